//! Consent following the profiles change feed: merges keep the most restrictive decision, and
//! orders make soft opt-in lawful. Profiles and consent run in this process on one database.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::{Duration, Instant};

use ecrm_auth::Scope;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{TestServer, TokenSpec};
use support::{Harness, call, grant, withdraw};

fn profiles_token(harness: &Harness) -> String {
    harness.auth.token(&TokenSpec::internal(
        "profiles",
        [Scope::ProfilesWrite, Scope::EventsWrite]
            .into_iter()
            .collect(),
    ))
}

async fn customer(harness: &Harness, profiles: &TestServer, email: &str) -> String {
    profiles
        .client(ProfilesClient::new)
        .upsert_profile(call(
            &profiles_token(harness),
            profiles::UpsertProfileRequest {
                identifiers: vec![profiles::NewIdentifier {
                    identifier: Some(common::Identifier {
                        kind: common::IdentifierKind::Email.into(),
                        value: email.to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                source: "web_shop".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
        .subject_id
}

async fn merge(harness: &Harness, profiles: &TestServer, survivor: &str, merged: &str) {
    profiles
        .client(ProfilesClient::new)
        .merge_profiles(call(
            &profiles_token(harness),
            profiles::MergeProfilesRequest {
                subject_id: survivor.to_owned(),
                merged_subject_id: merged.to_owned(),
                reason: "same customer confirmed by the call centre".to_owned(),
            },
        ))
        .await
        .unwrap();
}

async fn order(harness: &Harness, profiles: &TestServer, subject: &str, order_id: &str) {
    let eur = |amount_minor| common::Money {
        amount_minor,
        currency: "EUR".to_owned(),
    };
    let batch = profiles::RecordInteractionsRequest {
        interactions: vec![profiles::Interaction {
            event_id: format!("order-{order_id}"),
            subject: Some(common::SubjectRef {
                subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
            }),
            channel: profiles::Channel::Web.into(),
            occurred_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            details: Some(profiles::interaction::Details::Order(profiles::Order {
                order_id: order_id.to_owned(),
                total: Some(eur(4_990)),
                line_items: vec![profiles::LineItem {
                    product_id: "tent-2p".to_owned(),
                    category: "camping".to_owned(),
                    quantity: 1,
                    unit_price: Some(eur(4_990)),
                }],
            })),
        }],
    };
    profiles
        .client(InteractionsClient::new)
        .record_interactions(call(
            &profiles_token(harness),
            futures::stream::iter([batch]),
        ))
        .await
        .unwrap();
}

/// Waits until `subject`'s check of `key` on email gives `expected`.
async fn until_reason(harness: &Harness, key: &str, subject: &str, expected: pb::Reason) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let decision = harness
            .check(key, pb::Channel::Email, &[subject.to_owned()])
            .await
            .unwrap()
            .remove(0);
        if decision.reason() == expected {
            assert_eq!(decision.subject_id, subject);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} for {subject}: still {:?}, not {expected:?}",
            decision.reason()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_merge_keeps_the_most_restrictive_decision_of_either_subject() {
    let (harness, profiles) = Harness::start_following_profiles().await;
    for key in ["newsletter", "offers", "surveys"] {
        harness
            .define(key, common::LawfulBasis::Consent, &[pb::Channel::Email])
            .await;
    }
    let newsletter = harness.notice("newsletter", "Our weekly newsletter.").await;
    let offers = harness.notice("offers", "Offers from us.").await;
    let surveys = harness.notice("surveys", "Short surveys.").await;
    let survivor = customer(&harness, &profiles, "ada@example.com").await;
    let merged = customer(&harness, &profiles, "ada.lovelace@example.com").await;

    // newsletter: granted by the survivor, withdrawn by the other: withdrawn wins.
    harness
        .record(grant(&survivor, "newsletter", &newsletter))
        .await
        .unwrap();
    harness
        .record(grant(&merged, "newsletter", &newsletter))
        .await
        .unwrap();
    harness
        .record(withdraw(&merged, "newsletter"))
        .await
        .unwrap();
    // offers: only the merged subject decided: its grant carries over.
    harness
        .record(grant(&merged, "offers", &offers))
        .await
        .unwrap();
    // surveys: both granted; the grant that lapses first wins.
    let soon = chrono::Utc::now() + chrono::Duration::days(30);
    harness
        .record(grant(&survivor, "surveys", &surveys))
        .await
        .unwrap();
    harness
        .record(pb::RecordConsentRequest {
            expires_at: Some(prost_types::Timestamp {
                seconds: soon.timestamp(),
                nanos: 0,
            }),
            ..grant(&merged, "surveys", &surveys)
        })
        .await
        .unwrap();

    merge(&harness, &profiles, &survivor, &merged).await;
    until_reason(&harness, "newsletter", &survivor, pb::Reason::Withdrawn).await;
    until_reason(&harness, "offers", &survivor, pb::Reason::Granted).await;
    // The merged id answers for the survivor.
    until_reason(&harness, "newsletter", &merged, pb::Reason::Withdrawn).await;

    let state = harness
        .consents()
        .get_consent_state(call(
            &harness.internal(),
            pb::GetConsentStateRequest {
                subject_id: survivor.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let surveys_state = state
        .states
        .iter()
        .find(|s| s.purpose_key == "surveys")
        .unwrap();
    assert_eq!(
        surveys_state.expires_at.as_ref().map(|t| t.seconds),
        Some(soon.timestamp())
    );
    // Each change is in the survivor's ledger, said to come from the merge.
    let history = harness
        .consents()
        .list_consent_history(call(
            &harness.internal(),
            pb::ListConsentHistoryRequest {
                subject_id: survivor.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let merged_in: Vec<(&str, pb::Decision)> = history
        .iter()
        .filter(|e| e.collection_point == "profile_merge")
        .map(|e| (e.purpose_key.as_str(), e.decision()))
        .collect();
    assert_eq!(
        merged_in,
        [
            ("newsletter", pb::Decision::Withdrawn),
            ("offers", pb::Decision::Granted),
            ("surveys", pb::Decision::Granted),
        ]
    );
    // The chain still verifies.
    let verified = harness
        .consents()
        .verify_ledger(call(
            &harness.internal(),
            pb::VerifyLedgerRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact, "{verified:?}");
}

#[tokio::test]
async fn soft_opt_in_holds_for_customers_who_bought_until_they_object_or_withdraw() {
    let (mut harness, profiles) = Harness::start_following_profiles().await;
    harness
        .define(
            "similar_products",
            common::LawfulBasis::SoftOptIn,
            &[pb::Channel::Email],
        )
        .await;
    let buyer = customer(&harness, &profiles, "buyer@example.com").await;
    let browser = customer(&harness, &profiles, "browser@example.com").await;
    until_reason(&harness, "similar_products", &buyer, pb::Reason::NeverAsked).await;

    order(&harness, &profiles, &buyer, "A-1").await;
    until_reason(&harness, "similar_products", &buyer, pb::Reason::SoftOptIn).await;
    until_reason(
        &harness,
        "similar_products",
        &browser,
        pb::Reason::NeverAsked,
    )
    .await;

    // While consent is down, the browser orders; after the restart it is caught up.
    harness.shutdown.cancel();
    order(&harness, &profiles, &browser, "B-1").await;
    harness.restart_following(&profiles).await;
    until_reason(
        &harness,
        "similar_products",
        &browser,
        pb::Reason::SoftOptIn,
    )
    .await;

    harness
        .record(withdraw(&buyer, "similar_products"))
        .await
        .unwrap();
    until_reason(&harness, "similar_products", &buyer, pb::Reason::Withdrawn).await;

    // The browser objects to direct marketing (Art. 21(3)), which soft opt-in is.
    let mut requests = harness.server.client(DataSubjectRequestsClient::new);
    let token = harness.internal();
    let id = requests
        .submit_request(call(
            &token,
            pb::SubmitRequestRequest {
                subject: Some(common::SubjectRef {
                    subject: Some(common::subject_ref::Subject::SubjectId(browser.clone())),
                }),
                r#type: pb::RequestType::Objection.into(),
                channel: pb::RequestChannel::Email.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap()
        .request_id;
    requests
        .verify_requester(call(
            &token,
            pb::VerifyRequesterRequest {
                request_id: id.clone(),
                reason: "replied from the address on file".to_owned(),
            },
        ))
        .await
        .unwrap();
    requests
        .approve_request(call(&token, pb::ApproveRequestRequest { request_id: id }))
        .await
        .unwrap();
    until_reason(&harness, "similar_products", &browser, pb::Reason::Objected).await;
}
