//! What a partner reaches through the profiles API: the subjects it synced or that share with
//! it, within what they share, and only its own interactions.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::sync::Arc;

use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::profiles::v1 as pb;
use support::partners::*;
use support::*;
use tonic::Code;
use uuid::Uuid;

#[tokio::test]
async fn a_restricted_subject_is_not_shared() {
    let grants = Arc::new(Grants::default());
    let harness = Harness::start_with(grants.clone()).await;
    let subject = upsert_as(
        &harness,
        "air-one",
        partner_upsert("AF-3", "rae@example.com", "Rae"),
    )
    .await
    .unwrap();
    grants.grant("air-one", &subject, &["given_name"]);
    let (before, _) = pull_all(&harness, "air-one").await;
    assert_eq!(before.len(), 1, "shared before the restriction");
    harness
        .personal_data()
        .restrict(call(
            &harness.orchestrator(),
            privacy::RestrictRequest {
                subject_id: subject.clone(),
                request_id: Uuid::now_v7().to_string(),
                restricted: true,
            },
        ))
        .await
        .unwrap();
    assert!(pull_all(&harness, "air-one").await.0.is_empty());
    // The partner still reaches the subject it synced, with only its own reference.
    let seen = harness
        .profiles()
        .get_profile(read(
            &harness.partner("air-one"),
            pb::GetProfileRequest {
                subject: Some(by_id(&subject)),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(seen.attributes.unwrap(), pb::ProfileAttributes::default());
    let values: Vec<String> = seen
        .identifiers
        .iter()
        .map(|i| i.identifier.clone().unwrap().value)
        .collect();
    assert_eq!(values, ["AF-3"]);
    assert!(!seen.restricted);
}

async fn partner_get(
    harness: &Harness,
    partner: &str,
    subject: &str,
) -> Result<pb::Profile, tonic::Status> {
    harness
        .profiles()
        .get_profile(read(
            &harness.partner(partner),
            pb::GetProfileRequest {
                subject: Some(by_id(subject)),
            },
        ))
        .await
        .map(|r| r.into_inner().profile.unwrap())
}

#[tokio::test]
async fn a_partner_reads_a_subject_that_shares_with_it_within_what_is_shared() {
    let grants = Arc::new(Grants::default());
    let harness = Harness::start_with(grants.clone()).await;
    let bob = harness.upsert_email("bob@example.com", "Bob").await;
    harness
        .profiles()
        .update_profile(call(
            &harness.internal(),
            pb::UpdateProfileRequest {
                subject_id: bob.subject_id.clone(),
                attributes: Some(pb::ProfileAttributes {
                    family_name: "Builder".to_owned(),
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
    // Not synced, not shared: out of reach.
    let status = partner_get(&harness, "air-one", &bob.subject_id)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    grants.grant("air-one", &bob.subject_id, &["family_name", "email"]);
    let seen = partner_get(&harness, "air-one", &bob.subject_id)
        .await
        .unwrap();
    let attributes = seen.attributes.unwrap();
    assert_eq!(attributes.family_name, "Builder");
    assert_eq!(attributes.given_name, "", "given_name is not shared");
    let email = &seen.identifiers[0];
    assert_eq!(email.identifier.as_ref().unwrap().value, "bob@example.com");
    // Where the email came from is not the partner's business.
    assert_eq!(email.source, "");
    let export = harness.export(&bob.subject_id).await;
    let disclosures: Vec<&serde_json::Value> = export
        .iter()
        .filter(|(c, _)| c == "disclosures")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(disclosures.len(), 1);
    assert_eq!(
        disclosures[0]["fields"],
        serde_json::json!(["subject_id", "email", "family_name"])
    );
    // Another partner, which neither synced Bob nor is shared with, still cannot reach him.
    let status = partner_get(&harness, "hotel-two", &bob.subject_id)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_subject_synced_by_another_partner_is_out_of_reach() {
    let harness = Harness::start().await;
    let subject = upsert_as(
        &harness,
        "hotel-two",
        partner_upsert("H-1", "hal@example.com", "Hal"),
    )
    .await
    .unwrap();
    let status = partner_get(&harness, "air-one", &subject)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // Nor can it record interactions on it: the batch names the field, stores nothing.
    let mine = upsert_as(
        &harness,
        "air-one",
        partner_upsert("AF-8", "amos@example.com", "Amos"),
    )
    .await
    .unwrap();
    let status = record(
        &harness,
        &harness.partner("air-one"),
        vec![vec![
            order("air-1", &mine, "PNR-1", 100, "EUR"),
            order("air-2", &subject, "PNR-2", 100, "EUR"),
        ]],
    )
    .await
    .unwrap_err();
    assert_eq!(bad_field(&status), "interactions[1].subject");
    assert!(list_interactions(&harness, &mine).await.is_empty());
}

#[tokio::test]
async fn a_partner_fills_in_attributes_but_never_overwrites_or_verifies_the_organisations() {
    let harness = Harness::start().await;
    let shop = harness.upsert_email("liv@example.com", "Liv").await;
    let mut request = partner_upsert("AF-4", "liv@example.com", "Olivia");
    request.attributes.as_mut().unwrap().country = "NO".to_owned();
    upsert_as(&harness, "air-one", request.clone())
        .await
        .unwrap();
    let attributes = harness
        .get(&shop.subject_id)
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attributes.given_name, "Liv", "the shop's value stays");
    assert_eq!(attributes.country, "NO", "an unknown value is filled in");
    assert_eq!(attributes.family_name, "Flyer");
    // The partner may change what it wrote itself.
    request.attributes.as_mut().unwrap().country = "SE".to_owned();
    upsert_as(&harness, "air-one", request.clone())
        .await
        .unwrap();
    let attributes = harness
        .get(&shop.subject_id)
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attributes.country, "SE");

    request.identifiers[0].verified = true;
    let status = upsert_as(&harness, "air-one", request).await.unwrap_err();
    assert_eq!(bad_field(&status), "identifiers[0].verified");
    let profile = harness.get(&shop.subject_id).await.unwrap();
    assert!(profile.identifiers.iter().all(|i| !i.verified));
}

#[tokio::test]
async fn a_partner_records_and_lists_only_its_own_interactions() {
    let harness = Harness::start().await;
    let shop = harness.upsert_email("ida@example.com", "Ida").await;
    let subject = upsert_as(
        &harness,
        "air-one",
        partner_upsert("AF-2", "ida@example.com", "Ida"),
    )
    .await
    .unwrap();
    assert_eq!(subject, shop.subject_id);
    let mut from_partner = order("air-evt-1", &subject, "PNR-1", 45_000, "EUR");
    from_partner.channel = pb::Channel::Partner.into();
    record(
        &harness,
        &harness.internal(),
        vec![vec![order("evt-1", &subject, "order-1", 8_900, "EUR")]],
    )
    .await
    .unwrap();
    let recorded = record(
        &harness,
        &harness.partner("air-one"),
        vec![vec![from_partner]],
    )
    .await
    .unwrap();
    assert_eq!(recorded.recorded, 1, "{recorded:?}");
    assert_eq!(list_interactions(&harness, &subject).await.len(), 2);

    let list = |partner: &str| {
        let mut client = harness.interactions();
        let request = read(
            &harness.partner(partner),
            pb::ListInteractionsRequest {
                subject_id: subject.clone(),
                ..Default::default()
            },
        );
        async move { client.list_interactions(request).await }
    };
    let own = list("air-one").await.unwrap().into_inner().interactions;
    assert_eq!(own.len(), 1);
    let Some(pb::interaction::Details::Order(order)) = own[0].interaction.clone().unwrap().details
    else {
        panic!("not an order: {own:?}");
    };
    assert_eq!(order.order_id, "PNR-1");
    // Another partner does not reach the subject at all.
    assert_eq!(list("hotel-two").await.unwrap_err().code(), Code::NotFound);
}
