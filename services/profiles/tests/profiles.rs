//! Profiles through the running service: identity resolution, merges, validation, access.

mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_testkit::TokenSpec;
use support::*;
use tonic::Code;

#[tokio::test]
async fn the_same_email_in_another_case_is_the_same_subject() {
    let harness = Harness::start().await;
    let first = harness.upsert_email("Jane.Doe@Example.com", "Jane").await;
    let second = harness
        .upsert_email("  jane.doe@example.COM ", "Jane")
        .await;
    assert_eq!(first.subject_id, second.subject_id);
    let found = harness
        .profiles()
        .get_profile(read(
            &harness.internal(),
            pb::GetProfileRequest {
                subject: Some(by_identifier(email_id("JANE.DOE@example.com"))),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(found.subject_id, first.subject_id);
    assert_eq!(found.identifiers.len(), 1);
    assert_eq!(
        found.identifiers[0].identifier.as_ref().unwrap().value,
        "jane.doe@example.com"
    );
    assert_eq!(found.attributes.unwrap().given_name, "Jane");
}

#[tokio::test]
async fn an_upsert_touching_two_profiles_fails_naming_both_unless_asked_to_merge() {
    let harness = Harness::start().await;
    let by_email = harness.upsert_email("sam@example.com", "Sam").await;
    let by_phone = harness
        .profiles()
        .upsert_profile(call(
            &harness.internal(),
            pb::UpsertProfileRequest {
                identifiers: vec![new_identifier(phone_id("+33 6 12 34 56 78"))],
                source: "call_centre".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let both = pb::UpsertProfileRequest {
        identifiers: vec![
            new_identifier(email_id("sam@example.com")),
            new_identifier(phone_id("+33612345678")),
        ],
        source: "web_shop".to_owned(),
        ..Default::default()
    };
    let refused = harness
        .profiles()
        .upsert_profile(call(&harness.internal(), both.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains(&by_email.subject_id),
        "{refused:?}"
    );
    assert!(
        refused.message().contains(&by_phone.subject_id),
        "{refused:?}"
    );

    let merged = harness
        .profiles()
        .upsert_profile(call(
            &harness.internal(),
            pb::UpsertProfileRequest {
                merge_if_needed: true,
                ..both
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // The older profile survives.
    let survivor = merged.profile.unwrap();
    assert_eq!(survivor.subject_id, by_email.subject_id);
    assert_eq!(merged.merged_subject_ids, vec![by_phone.subject_id.clone()]);
    assert_eq!(survivor.identifiers.len(), 2);
    // The merged subject id still leads to the survivor.
    assert_eq!(
        harness.get(&by_phone.subject_id).await.unwrap().subject_id,
        survivor.subject_id
    );
}

#[tokio::test]
async fn a_merge_keeps_identifiers_attributes_and_interactions_and_is_in_the_history() {
    let harness = Harness::start().await;
    let survivor = harness.upsert_email("ann@example.com", "Ann").await;
    let other = harness.upsert_email("ann.work@example.com", "Anne").await;
    let token = harness.internal();
    record(
        &harness,
        &token,
        vec![vec![order("e-1", &other.subject_id, "o-1", 4200, "EUR")]],
    )
    .await
    .unwrap();
    // A value only the merged profile has.
    harness
        .profiles()
        .update_profile(call(
            &token,
            pb::UpdateProfileRequest {
                subject_id: other.subject_id.clone(),
                attributes: Some(pb::ProfileAttributes {
                    family_name: "Smith".to_owned(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["family_name".to_owned()],
                }),
                source: "call_centre".to_owned(),
            },
        ))
        .await
        .unwrap();

    let merged = harness
        .profiles()
        .merge_profiles(call(
            &token,
            pb::MergeProfilesRequest {
                subject_id: survivor.subject_id.clone(),
                merged_subject_id: other.subject_id.clone(),
                reason: "same customer, confirmed on the phone".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let mut emails: Vec<String> = merged
        .identifiers
        .iter()
        .map(|i| i.identifier.as_ref().unwrap().value.clone())
        .collect();
    emails.sort();
    assert_eq!(emails, ["ann.work@example.com", "ann@example.com"]);
    let attributes = merged.attributes.unwrap();
    // The survivor's value wins; the merged profile's fills what the survivor lacked.
    assert_eq!(attributes.given_name, "Ann");
    assert_eq!(attributes.family_name, "Smith");
    assert_eq!(merged.merged_subject_ids, vec![other.subject_id.clone()]);
    let interactions = list_interactions(&harness, &survivor.subject_id).await;
    assert_eq!(interactions.len(), 1);
    assert_eq!(interactions[0].subject_id, survivor.subject_id);
    // Interactions that still name the merged subject, by id or by its email, land on the
    // survivor, in one batch with one naming the survivor itself.
    let mut by_email = order("e-3", &other.subject_id, "o-3", 100, "EUR");
    by_email.subject = Some(by_identifier(email_id("ANN.work@example.com")));
    record(
        &harness,
        &token,
        vec![vec![
            order("e-2", &other.subject_id, "o-2", 100, "EUR"),
            by_email,
            order("e-4", &survivor.subject_id, "o-4", 100, "EUR"),
        ]],
    )
    .await
    .unwrap();
    let interactions = list_interactions(&harness, &survivor.subject_id).await;
    assert_eq!(interactions.len(), 4);
    assert!(
        interactions
            .iter()
            .all(|i| i.subject_id == survivor.subject_id)
    );

    // A merged profile cannot be merged again.
    let again = harness
        .profiles()
        .merge_profiles(call(
            &token,
            pb::MergeProfilesRequest {
                subject_id: survivor.subject_id.clone(),
                merged_subject_id: other.subject_id.clone(),
                reason: "again".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_identifiers_and_attributes_are_refused_naming_the_field_and_nothing_is_stored() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let cases = [
        (
            vec![new_identifier(email_id("not-an-email"))],
            None,
            "identifiers[0].identifier.value",
        ),
        (
            vec![
                new_identifier(email_id("ok@example.com")),
                new_identifier(phone_id("0612345678")),
            ],
            None,
            "identifiers[1].identifier.value",
        ),
        (
            vec![new_identifier(email_id("ok@example.com"))],
            Some(pb::ProfileAttributes {
                custom: [(
                    "shoe_size".to_owned(),
                    pb::AttributeValue {
                        value: Some(pb::attribute_value::Value::NumberValue(42.0)),
                    },
                )]
                .into(),
                ..Default::default()
            }),
            "attributes.custom[\"shoe_size\"]",
        ),
        (
            vec![new_identifier(email_id("ok@example.com"))],
            Some(pb::ProfileAttributes {
                country: "France".to_owned(),
                ..Default::default()
            }),
            "attributes.country",
        ),
    ];
    for (identifiers, attributes, field) in cases {
        let status = harness
            .profiles()
            .upsert_profile(call(
                &token,
                pb::UpsertProfileRequest {
                    identifiers,
                    attributes,
                    source: "web_shop".to_owned(),
                    merge_if_needed: false,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(bad_field(&status), field);
    }
    let listed = harness
        .profiles()
        .list_profiles(read(&token, pb::ListProfilesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.profiles.is_empty(),
        "something was stored: {listed:?}"
    );
}

#[tokio::test]
async fn custom_attributes_are_typed_against_their_definition() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let define = |key: &str, kind: pb::AttributeType| pb::DefineAttributeRequest {
        definition: Some(pb::AttributeDefinition {
            key: key.to_owned(),
            r#type: kind.into(),
            description: "loyalty tier".to_owned(),
        }),
    };
    harness
        .profiles()
        .define_attribute(call(&token, define("tier", pb::AttributeType::String)))
        .await
        .unwrap();
    let retyped = harness
        .profiles()
        .define_attribute(call(&token, define("tier", pb::AttributeType::Number)))
        .await
        .unwrap_err();
    assert_eq!(retyped.code(), Code::FailedPrecondition);
    let profile = harness.upsert_email("tom@example.com", "Tom").await;
    let set = |value: pb::attribute_value::Value| pb::UpdateProfileRequest {
        subject_id: profile.subject_id.clone(),
        attributes: Some(pb::ProfileAttributes {
            custom: [("tier".to_owned(), pb::AttributeValue { value: Some(value) })].into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["custom.tier".to_owned()],
        }),
        source: "crm".to_owned(),
    };
    let mistyped = harness
        .profiles()
        .update_profile(call(
            &token,
            set(pb::attribute_value::Value::BoolValue(true)),
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&mistyped), "attributes.custom[\"tier\"]");
    let updated = harness
        .profiles()
        .update_profile(call(
            &token,
            set(pb::attribute_value::Value::StringValue("gold".into())),
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(
        updated.attributes.unwrap().custom["tier"].value,
        Some(pb::attribute_value::Value::StringValue("gold".into()))
    );
}

#[tokio::test]
async fn identifiers_are_added_with_their_verification_and_removed() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let profile = harness.upsert_email("lee@example.com", "Lee").await;
    let other = harness.upsert_email("kim@example.com", "Kim").await;
    let added = harness
        .profiles()
        .add_identifier(call(
            &token,
            pb::AddIdentifierRequest {
                subject_id: profile.subject_id.clone(),
                identifier: Some(pb::NewIdentifier {
                    identifier: Some(phone_id("+44 20 7946 0958")),
                    verified: true,
                    verified_at: None,
                    verification_method: "sms_code".to_owned(),
                }),
                source: "app".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let phone = added
        .identifiers
        .iter()
        .find(|i| i.identifier.as_ref().unwrap().value == "+442079460958")
        .unwrap();
    assert!(phone.verified && phone.verified_at.is_some());
    assert_eq!(phone.verification_method, "sms_code");
    // Someone else's identifier cannot be taken.
    let taken = harness
        .profiles()
        .add_identifier(call(
            &token,
            pb::AddIdentifierRequest {
                subject_id: other.subject_id.clone(),
                identifier: Some(new_identifier(phone_id("+442079460958"))),
                source: "app".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    let removed = harness
        .profiles()
        .remove_identifier(call(
            &token,
            pb::RemoveIdentifierRequest {
                subject_id: profile.subject_id.clone(),
                identifier: Some(phone_id("+442079460958")),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(removed.identifiers.len(), 1);
}

#[tokio::test]
async fn reads_of_personal_data_must_declare_their_purpose() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("mia@example.com", "Mia").await;
    let status = harness
        .profiles()
        .get_profile(call(
            &harness.internal(),
            pb::GetProfileRequest {
                subject: Some(by_id(&profile.subject_id)),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&status), "x-ecrm-purpose");
}

#[tokio::test]
async fn every_method_needs_its_scope() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("noa@example.com", "Noa").await;
    let get = || pb::GetProfileRequest {
        subject: Some(by_id(&profile.subject_id)),
    };
    let no_token = harness
        .profiles()
        .get_profile(tonic::Request::new(get()))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);
    let write_only = harness.token(TokenSpec::internal(
        "profiles",
        scopes(&[Scope::ProfilesWrite]),
    ));
    let denied = harness
        .profiles()
        .get_profile(read(&write_only, get()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let read_only = harness.token(TokenSpec::internal(
        "profiles",
        scopes(&[Scope::ProfilesRead]),
    ));
    let denied = harness
        .profiles()
        .upsert_profile(call(
            &read_only,
            pb::UpsertProfileRequest {
                identifiers: vec![new_identifier(email_id("x@example.com"))],
                source: "web_shop".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let other_audience = harness.token(TokenSpec::internal(
        "consent",
        scopes(&[Scope::ProfilesRead]),
    ));
    let refused = harness
        .profiles()
        .get_profile(read(&other_audience, get()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_partner_cannot_read_a_subject_it_did_not_sync() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("eve@example.com", "Eve").await;
    let partner = harness.partner("air-one");
    for subject in [profile.subject_id.clone(), uuid::Uuid::now_v7().to_string()] {
        let status = harness
            .profiles()
            .get_profile(read(
                &partner,
                pb::GetProfileRequest {
                    subject: Some(by_id(&subject)),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
    let by_email = harness
        .profiles()
        .get_profile(read(
            &partner,
            pb::GetProfileRequest {
                subject: Some(by_identifier(email_id("eve@example.com"))),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&by_email), "subject.identifier");
    // Nor write profiles directly.
    let denied = harness
        .profiles()
        .upsert_profile(call(
            &partner,
            pb::UpsertProfileRequest {
                identifiers: vec![new_identifier(email_id("eve@example.com"))],
                source: "air-one".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}
