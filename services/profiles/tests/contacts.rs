//! `Profiles.GetContacts` through the running service: what messaging needs of a batch of
//! subjects, which address is chosen, merges, erasure, restriction, validation and access.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_testkit::TokenSpec;
use support::*;
use tonic::Code;

async fn contacts_for(
    harness: &Harness,
    token: &str,
    purpose: &str,
    subject_ids: &[&str],
) -> Result<Vec<pb::Contact>, tonic::Status> {
    harness
        .profiles()
        .get_contacts(read_for(
            token,
            purpose,
            pb::GetContactsRequest {
                subject_ids: subject_ids.iter().map(|s| (*s).to_owned()).collect(),
            },
        ))
        .await
        .map(|r| r.into_inner().contacts)
}

/// Contacts for marketing, as the outbound service asks.
async fn contacts(harness: &Harness, subject_ids: &[&str]) -> Vec<pb::Contact> {
    contacts_for(harness, &harness.internal(), "marketing", subject_ids)
        .await
        .unwrap()
}

async fn add(harness: &Harness, subject_id: &str, identifier: common::Identifier, verified: bool) {
    harness
        .profiles()
        .add_identifier(call(
            &harness.internal(),
            pb::AddIdentifierRequest {
                subject_id: subject_id.to_owned(),
                identifier: Some(pb::NewIdentifier {
                    identifier: Some(identifier),
                    verified,
                    ..Default::default()
                }),
                source: "web_shop".to_owned(),
            },
        ))
        .await
        .unwrap();
}

async fn restrict(harness: &Harness, subject_id: &str) {
    harness
        .personal_data()
        .restrict(call(
            &harness.orchestrator(),
            privacy::RestrictRequest {
                subject_id: subject_id.to_owned(),
                request_id: uuid::Uuid::now_v7().to_string(),
                restricted: true,
            },
        ))
        .await
        .unwrap();
}

async fn merge(harness: &Harness, survivor: &str, merged: &str) {
    harness
        .profiles()
        .merge_profiles(call(
            &harness.internal(),
            pb::MergeProfilesRequest {
                subject_id: survivor.to_owned(),
                merged_subject_id: merged.to_owned(),
                reason: "same customer".to_owned(),
            },
        ))
        .await
        .unwrap();
}

async fn erase(harness: &Harness, subject_id: &str) {
    harness
        .personal_data()
        .erase(call(
            &harness.orchestrator(),
            privacy::EraseRequest {
                subject_id: subject_id.to_owned(),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap();
}

fn not_found(subject_id: &str) -> pb::Contact {
    pb::Contact {
        subject_id: subject_id.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn contacts_of_several_profiles_come_in_one_call_in_the_order_asked() {
    let harness = Harness::start().await;
    let ada = harness.upsert_email("ada@example.com", "Ada").await;
    let bob = harness.upsert_email("bob@example.com", "Bob").await;
    let cy = harness.upsert_email("cy@example.com", "Cy").await;
    let asked = [
        cy.subject_id.as_str(),
        ada.subject_id.as_str(),
        bob.subject_id.as_str(),
        cy.subject_id.as_str(),
    ];
    let found = contacts(&harness, &asked).await;
    let seen: Vec<(&str, &str, &str, bool)> = found
        .iter()
        .map(|c| {
            (
                c.subject_id.as_str(),
                c.email.as_str(),
                c.given_name.as_str(),
                c.found,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (asked[0], "cy@example.com", "Cy", true),
            (asked[1], "ada@example.com", "Ada", true),
            (asked[2], "bob@example.com", "Bob", true),
            (asked[3], "cy@example.com", "Cy", true),
        ]
    );
    assert!(
        found
            .iter()
            .all(|c| c.merged_into.is_empty() && !c.restricted)
    );
}

#[tokio::test]
async fn the_email_written_to_is_the_verified_one_added_last_else_the_one_added_last() {
    let harness = Harness::start().await;
    let unverified = harness.upsert_email("first@example.com", "Una").await;
    add(
        &harness,
        &unverified.subject_id,
        email_id("second@example.com"),
        false,
    )
    .await;
    let mixed = harness.upsert_email("old@example.com", "Max").await;
    add(
        &harness,
        &mixed.subject_id,
        email_id("checked@example.com"),
        true,
    )
    .await;
    add(
        &harness,
        &mixed.subject_id,
        email_id("newest@example.com"),
        false,
    )
    .await;
    let emails = |contacts: Vec<pb::Contact>| -> Vec<String> {
        contacts.into_iter().map(|c| c.email).collect()
    };
    assert_eq!(
        emails(contacts(&harness, &[&unverified.subject_id, &mixed.subject_id]).await),
        ["second@example.com", "checked@example.com"]
    );
    // A later verified address wins over the earlier verified one.
    add(
        &harness,
        &mixed.subject_id,
        email_id("later.checked@example.com"),
        true,
    )
    .await;
    assert_eq!(
        emails(contacts(&harness, &[&mixed.subject_id]).await),
        ["later.checked@example.com"]
    );
}

#[tokio::test]
async fn the_phone_written_to_is_chosen_the_same_way_in_e164() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("pat@example.com", "Pat").await;
    let no_phone = contacts(&harness, &[&profile.subject_id]).await;
    assert_eq!(no_phone[0].phone, "");
    add(
        &harness,
        &profile.subject_id,
        phone_id("+33 6 12 34 56 78"),
        false,
    )
    .await;
    assert_eq!(
        contacts(&harness, &[&profile.subject_id]).await[0].phone,
        "+33612345678"
    );
    add(
        &harness,
        &profile.subject_id,
        phone_id("+44 20 7946 0958"),
        true,
    )
    .await;
    add(
        &harness,
        &profile.subject_id,
        phone_id("+33 7 00 00 00 01"),
        false,
    )
    .await;
    let contact = &contacts(&harness, &[&profile.subject_id]).await[0];
    assert_eq!(contact.phone, "+442079460958");
    assert_eq!(contact.email, "pat@example.com");
}

#[tokio::test]
async fn timezone_locale_and_given_name_are_reported_and_nothing_else_is_needed() {
    let harness = Harness::start().await;
    let profile = harness
        .profiles()
        .upsert_profile(call(
            &harness.internal(),
            pb::UpsertProfileRequest {
                identifiers: vec![new_identifier(email_id("zoe@example.com"))],
                attributes: Some(pb::ProfileAttributes {
                    given_name: "Zoé".to_owned(),
                    family_name: "Martin".to_owned(),
                    locale: "fr-FR".to_owned(),
                    country: "FR".to_owned(),
                    timezone: "Europe/Paris".to_owned(),
                    ..Default::default()
                }),
                source: "web_shop".to_owned(),
                merge_if_needed: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let bare = harness
        .profiles()
        .upsert_profile(call(
            &harness.internal(),
            pb::UpsertProfileRequest {
                identifiers: vec![new_identifier(phone_id("+33 6 98 76 54 32"))],
                source: "call_centre".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let found = contacts(&harness, &[&profile.subject_id, &bare.subject_id]).await;
    assert_eq!(
        found[0],
        pb::Contact {
            subject_id: profile.subject_id.clone(),
            found: true,
            email: "zoe@example.com".to_owned(),
            timezone: "Europe/Paris".to_owned(),
            locale: "fr-FR".to_owned(),
            given_name: "Zoé".to_owned(),
            ..Default::default()
        }
    );
    assert_eq!(
        found[1],
        pb::Contact {
            subject_id: bare.subject_id.clone(),
            found: true,
            phone: "+33698765432".to_owned(),
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn a_restricted_profile_reports_restricted_and_its_contact_points_only_for_legal_claims() {
    let harness = Harness::start().await;
    let kept = harness.upsert_email("kept@example.com", "Kay").await;
    let held = harness.upsert_email("held@example.com", "Hal").await;
    restrict(&harness, &held.subject_id).await;
    let found = contacts(&harness, &[&kept.subject_id, &held.subject_id]).await;
    assert!(!found[0].restricted);
    assert_eq!(found[0].email, "kept@example.com");
    assert_eq!(
        found[1],
        pb::Contact {
            subject_id: held.subject_id.clone(),
            found: true,
            restricted: true,
            ..Default::default()
        }
    );
    let legal = contacts_for(
        &harness,
        &harness.internal(),
        "legal_claims",
        &[&held.subject_id],
    )
    .await
    .unwrap();
    assert!(legal[0].restricted);
    assert_eq!(legal[0].email, "held@example.com");
    assert_eq!(legal[0].given_name, "Hal");
}

#[tokio::test]
async fn an_unknown_id_is_not_found() {
    let harness = Harness::start().await;
    let known = harness.upsert_email("known@example.com", "Ken").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let found = contacts(&harness, &[&unknown, &known.subject_id]).await;
    assert_eq!(found[0], not_found(&unknown));
    assert!(found[1].found);
}

#[tokio::test]
async fn a_merged_id_reports_the_survivor_and_its_contact_points() {
    let harness = Harness::start().await;
    let survivor = harness.upsert_email("sue@example.com", "Sue").await;
    let merged = harness.upsert_email("sue.work@example.com", "Susan").await;
    let other = harness.upsert_email("sue.old@example.com", "Suzy").await;
    merge(&harness, &survivor.subject_id, &merged.subject_id).await;
    // Merged into a profile that is itself merged afterwards: still one step to the survivor.
    merge(&harness, &other.subject_id, &survivor.subject_id).await;
    let found = contacts(
        &harness,
        &[&merged.subject_id, &survivor.subject_id, &other.subject_id],
    )
    .await;
    for contact in &found[..2] {
        assert!(contact.found);
        assert_eq!(contact.merged_into, other.subject_id);
        // The survivor's values: its given name won the merge, and of the addresses it now
        // holds (none verified) its own was added last.
        assert_eq!(contact.given_name, "Suzy");
        assert_eq!(contact.email, "sue.old@example.com");
    }
    assert!(found[2].found);
    assert_eq!(found[2].merged_into, "");
    assert_eq!(found[2].email, "sue.old@example.com");
}

#[tokio::test]
async fn an_erased_profile_and_an_id_merged_into_it_are_not_found() {
    let harness = Harness::start().await;
    let gone = harness.upsert_email("gone@example.com", "Gil").await;
    let merged = harness.upsert_email("gone.too@example.com", "Gil").await;
    let stays = harness.upsert_email("stays@example.com", "Sia").await;
    merge(&harness, &gone.subject_id, &merged.subject_id).await;
    erase(&harness, &gone.subject_id).await;
    let found = contacts(
        &harness,
        &[&gone.subject_id, &merged.subject_id, &stays.subject_id],
    )
    .await;
    assert_eq!(found[0], not_found(&gone.subject_id));
    assert_eq!(found[1], not_found(&merged.subject_id));
    assert_eq!(found[2].email, "stays@example.com");
}

#[tokio::test]
async fn bad_ids_too_many_ids_or_none_are_invalid_naming_the_field() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let known = harness.upsert_email("lim@example.com", "Lim").await;
    let bad = contacts_for(
        &harness,
        &token,
        "marketing",
        &[&known.subject_id, "not-a-uuid"],
    )
    .await
    .unwrap_err();
    assert_eq!(bad_field(&bad), "subject_ids[1]");
    let none = contacts_for(&harness, &token, "marketing", &[])
        .await
        .unwrap_err();
    assert_eq!(bad_field(&none), "subject_ids");
    // 1,000 is the most one call may ask for.
    let mut ids: Vec<String> = (0..999).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    ids.push(known.subject_id.clone());
    let asked: Vec<&str> = ids.iter().map(String::as_str).collect();
    let found = contacts(&harness, &asked).await;
    assert_eq!(found.len(), 1000);
    assert_eq!(found.iter().filter(|c| c.found).count(), 1);
    assert_eq!(found[999].email, "lim@example.com");
    ids.push(uuid::Uuid::now_v7().to_string());
    let asked: Vec<&str> = ids.iter().map(String::as_str).collect();
    let too_many = contacts_for(&harness, &token, "marketing", &asked)
        .await
        .unwrap_err();
    assert_eq!(bad_field(&too_many), "subject_ids");
}

#[tokio::test]
async fn reading_contacts_needs_the_read_scope_a_purpose_and_no_partner() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("ivy@example.com", "Ivy").await;
    let asked = [profile.subject_id.as_str()];
    let write_only = harness.token(TokenSpec::internal(
        "profiles",
        scopes(&[Scope::ProfilesWrite, Scope::EventsWrite]),
    ));
    let denied = contacts_for(&harness, &write_only, "marketing", &asked)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let partner = harness.partner("air-one");
    let denied = contacts_for(&harness, &partner, "marketing", &asked)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let no_purpose = harness
        .profiles()
        .get_contacts(call(
            &harness.internal(),
            pb::GetContactsRequest {
                subject_ids: vec![profile.subject_id.clone()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&no_purpose), "x-ecrm-purpose");
    let read_only = harness.token(TokenSpec::internal(
        "profiles",
        scopes(&[Scope::ProfilesRead]),
    ));
    let found = contacts_for(&harness, &read_only, "marketing", &asked)
        .await
        .unwrap();
    assert_eq!(found[0].email, "ivy@example.com");
}

#[tokio::test]
async fn each_profile_read_is_in_its_access_log_with_the_purpose() {
    let harness = Harness::start().await;
    let read = harness.upsert_email("rae@example.com", "Rae").await;
    let held = harness.upsert_email("rex@example.com", "Rex").await;
    restrict(&harness, &held.subject_id).await;
    // Asked twice, read once.
    contacts(
        &harness,
        &[&read.subject_id, &held.subject_id, &read.subject_id],
    )
    .await;
    let reads = |export: Vec<(String, serde_json::Value)>| -> Vec<(String, String)> {
        export
            .into_iter()
            .filter(|(category, d)| {
                category == "access_log" && d["method"] == "Profiles/GetContacts"
            })
            .map(|(_, d)| {
                (
                    d["purpose"].as_str().unwrap().to_owned(),
                    d["action"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        reads(harness.export(&read.subject_id).await),
        [("marketing".to_owned(), "read".to_owned())]
    );
    // Nothing of the restricted profile was read.
    assert!(reads(harness.export(&held.subject_id).await).is_empty());
}
