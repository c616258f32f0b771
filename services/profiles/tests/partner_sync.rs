//! `PartnerSync` through the running service: partners upsert by their own reference and pull
//! only what subjects share with them, every disclosure recorded.

mod support;

use std::sync::Arc;

use ecrm_proto::ecrm::profiles::v1 as pb;
use support::partners::*;
use support::*;
use tonic::Code;

#[tokio::test]
async fn a_partner_upsert_by_its_own_reference_is_idempotent() {
    let harness = Harness::start().await;
    let request = partner_upsert("AF-1001", "Pat@Example.com", "Pat");
    let first = upsert_as(&harness, "air-one", request.clone())
        .await
        .unwrap();
    let again = upsert_as(&harness, "air-one", request).await.unwrap();
    assert_eq!(first, again);
    // Created once; the repeat changed nothing, so the feed has nothing more.
    assert_eq!(count_changes(&harness, &first).await, 1);

    let profile = harness.get(&first).await.unwrap();
    let attributes = profile.attributes.unwrap();
    assert_eq!(attributes.given_name, "Pat");
    let sources: Vec<&str> = profile
        .identifiers
        .iter()
        .map(|i| i.source.as_str())
        .collect();
    assert_eq!(sources, ["partner.air-one", "partner.air-one"]);
    let reference = profile
        .identifiers
        .iter()
        .map(|i| i.identifier.clone().unwrap())
        .find(|i| i.partner_id == "air-one")
        .unwrap();
    assert_eq!(reference.value, "AF-1001");

    // The same external id from another partner is another customer.
    let other = upsert_as(
        &harness,
        "hotel-two",
        partner_upsert("AF-1001", "sam@example.com", "Sam"),
    )
    .await
    .unwrap();
    assert_ne!(other, first);
}

#[tokio::test]
async fn a_partner_upsert_joins_the_profile_its_identifiers_already_name() {
    let harness = Harness::start().await;
    let shop = harness.upsert_email("lee@example.com", "Lee").await;
    let subject = upsert_as(
        &harness,
        "air-one",
        partner_upsert("AF-7", "LEE@example.com", "Lee"),
    )
    .await
    .unwrap();
    assert_eq!(subject, shop.subject_id);
    // The partner reaches the subject it synced, but sees only its own reference.
    let seen = harness
        .profiles()
        .get_profile(read(
            &harness.partner("air-one"),
            pb::GetProfileRequest {
                subject: Some(by_identifier(partner_ref("air-one", "AF-7"))),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(seen.subject_id, shop.subject_id);
    assert_eq!(seen.identifiers.len(), 1);
    assert_eq!(
        seen.identifiers[0].identifier.as_ref().unwrap().value,
        "AF-7"
    );
    assert_eq!(seen.attributes.unwrap(), pb::ProfileAttributes::default());
}

#[tokio::test]
async fn a_partner_upsert_spanning_two_customers_is_refused_without_naming_them() {
    let harness = Harness::start().await;
    let a = harness.upsert_email("a@example.com", "A").await;
    let b = harness.upsert_email("b@example.com", "B").await;
    let status = upsert_as(
        &harness,
        "air-one",
        pb::UpsertPartnerProfileRequest {
            external_id: "AF-9".to_owned(),
            identifiers: vec![
                new_identifier(email_id("a@example.com")),
                new_identifier(email_id("b@example.com")),
            ],
            attributes: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(!status.message().contains(&a.subject_id), "{status:?}");
    assert!(!status.message().contains(&b.subject_id), "{status:?}");
    // Nothing was stored: the reference names no one.
    let missing = harness
        .profiles()
        .get_profile(read(
            &harness.internal(),
            pb::GetProfileRequest {
                subject: Some(by_identifier(partner_ref("air-one", "AF-9"))),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_partner_input_names_the_field() {
    let harness = Harness::start().await;
    let mut empty = partner_upsert("", "ok@example.com", "Ok");
    let status = upsert_as(&harness, "air-one", empty.clone())
        .await
        .unwrap_err();
    assert_eq!(bad_field(&status), "external_id");

    empty.external_id = "AF-1".to_owned();
    empty.identifiers = vec![new_identifier(partner_ref("hotel-two", "H-1"))];
    let status = upsert_as(&harness, "air-one", empty.clone())
        .await
        .unwrap_err();
    assert_eq!(bad_field(&status), "identifiers[0].identifier.kind");

    empty.identifiers = vec![new_identifier(email_id("not an email"))];
    let status = upsert_as(&harness, "air-one", empty).await.unwrap_err();
    assert_eq!(bad_field(&status), "identifiers[0].identifier.value");

    let pulled = harness
        .partner_sync()
        .pull_changes(call(
            &harness.partner("air-one"),
            pb::PullChangesRequest {
                cursor: "not-a-cursor".to_owned(),
                max_changes: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&pulled), "cursor");
    let pulled = harness
        .partner_sync()
        .pull_changes(call(
            &harness.partner("air-one"),
            pb::PullChangesRequest {
                cursor: String::new(),
                max_changes: 501,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&pulled), "max_changes");
    // Nothing was stored by any of them.
    let stored = harness
        .sql(|conn| {
            use diesel::prelude::*;
            diesel::sql_query("SELECT count(*) AS n FROM profiles").get_result::<Count>(conn)
        })
        .await;
    assert_eq!(stored.n, 0);
}

#[tokio::test]
async fn partner_sync_is_for_partners_only() {
    let harness = Harness::start().await;
    let internal = harness.internal();
    let status = harness
        .partner_sync()
        .upsert_partner_profile(call(
            &internal,
            partner_upsert("AF-1", "x@example.com", "X"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = harness
        .partner_sync()
        .pull_changes(call(&internal, pb::PullChangesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // A partner token without the write scope cannot upsert.
    let read_only = harness.token(ecrm_testkit::TokenSpec::partner(
        "profiles",
        "air-one",
        scopes(&[ecrm_auth::Scope::ProfilesRead]),
    ));
    let status = harness
        .partner_sync()
        .upsert_partner_profile(call(
            &read_only,
            partner_upsert("AF-1", "x@example.com", "X"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn nothing_is_shared_until_the_subject_consents() {
    let harness = Harness::start().await;
    harness.upsert_email("kim@example.com", "Kim").await;
    let synced = upsert_as(
        &harness,
        "air-one",
        partner_upsert("AF-5", "kim2@example.com", "Kim"),
    )
    .await
    .unwrap();
    let (shared, end) = pull_all(&harness, "air-one").await;
    assert!(shared.is_empty());
    // The cursor moved on over changes that were not shared, and stays put at the end.
    assert!(!end.is_empty());
    let again = pull(&harness, "air-one", &end).await;
    assert!(again.profiles.is_empty());
    assert_eq!(again.next_cursor, end);
    // Nothing was disclosed, so no recipient is on record.
    assert!(
        harness
            .export(&synced)
            .await
            .iter()
            .all(|(category, _)| category != "disclosures")
    );
}

#[tokio::test]
async fn pull_changes_returns_consenting_subjects_with_only_the_fields_covered() {
    let grants = Arc::new(Grants::default());
    let harness = Harness::start_with(grants.clone()).await;
    let shared = upsert_as(
        &harness,
        "air-one",
        partner_upsert("AF-1", "amy@example.com", "Amy"),
    )
    .await
    .unwrap();
    let private = harness.upsert_email("bob@example.com", "Bob").await;
    let elsewhere = harness.upsert_email("cy@example.com", "Cy").await;
    grants.grant("air-one", &shared, &["given_name", "email"]);
    grants.grant("hotel-two", &elsewhere.subject_id, &["given_name"]);

    let (pulled, _) = pull_all(&harness, "air-one").await;
    let subjects: Vec<&str> = pulled.iter().map(|p| p.subject_id.as_str()).collect();
    assert_eq!(subjects, [shared.as_str()]);
    let amy = &pulled[0];
    assert_eq!(amy.external_id, "AF-1");
    let attributes = amy.attributes.clone().unwrap();
    assert_eq!(attributes.given_name, "Amy");
    assert_eq!(attributes.family_name, "", "family_name is not covered");
    let values: Vec<&str> = amy.identifiers.iter().map(|i| i.value.as_str()).collect();
    assert_eq!(values, ["AF-1", "amy@example.com"]);

    // The disclosure is on record as a recipient of Amy's data, and of no one else's.
    let export = harness.export(&shared).await;
    let disclosures: Vec<&serde_json::Value> = export
        .iter()
        .filter(|(c, _)| c == "disclosures")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(disclosures.len(), 1);
    assert_eq!(disclosures[0]["recipient_partner_id"], "air-one");
    assert_eq!(
        disclosures[0]["fields"],
        serde_json::json!(["subject_id", "email", "given_name"])
    );
    for other in [&private.subject_id, &elsewhere.subject_id] {
        assert!(
            harness
                .export(other)
                .await
                .iter()
                .all(|(category, _)| category != "disclosures")
        );
    }
}
