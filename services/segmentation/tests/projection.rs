//! The projection of the profiles change feed, through the running services: profiles and
//! segmentation in this process on one database, segmentation's view read through its
//! `PersonalData.Export`.
mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_segmentation::SERVICE;
use support::*;

#[tokio::test]
async fn orders_returns_and_visits_add_up_and_merges_erasures_and_restrictions_follow() {
    let suite = Suite::start().await;
    let ada = suite.customer("ada@example.com").await;
    let bo = suite.customer("bo@example.com").await;
    suite
        .record(vec![
            order(&ada, "A-1", 3, 4_990, "EUR"),
            order(&ada, "A-2", 10, 1_000, "USD"),
            refund(&ada, "A-1", 12, 1_000),
            view(&ada, "a1", 3, 9),
            view(&ada, "a2", 3, 10),
            view(&ada, "a3", 9, 18),
            order(&bo, "B-1", 5, 2_000, "GBP"),
            view(&bo, "b1", 5, 11),
        ])
        .await;

    let ada_now = suite
        .aggregates_until(&ada, |a| a.is_some_and(|a| a["returns"] == 1))
        .await
        .unwrap();
    assert_eq!(ada_now["orders"], 2);
    // 49.90 EUR + 10.00 USD at 0.92 - 10.00 EUR refunded.
    assert_eq!(ada_now["monetary_minor"], 4_990 + 920 - 1_000);
    assert_eq!(ada_now["orders_not_valued"], 0);
    assert_eq!(ada_now["visit_days"], 2);
    assert_eq!(ada_now["first_purchase_at"], "2026-10-03T12:00:00Z");
    assert_eq!(ada_now["last_purchase_at"], "2026-10-10T12:00:00Z");
    assert_eq!(ada_now["last_interaction_at"], "2026-10-12T12:00:00Z");
    let bo_now = suite
        .aggregates_until(&bo, |a| a.is_some_and(|a| a["visit_days"] == 1))
        .await
        .unwrap();
    // No rate for GBP: counted, not valued.
    assert_eq!(bo_now["orders"], 1);
    assert_eq!(bo_now["orders_not_valued"], 1);
    assert_eq!(bo_now["monetary_minor"], 0);

    // Bo turns out to be Ada: one customer with both histories.
    suite
        .profiles
        .client(ProfilesClient::new)
        .merge_profiles(call(
            &suite.token("profiles", &[Scope::ProfilesWrite]),
            profiles::MergeProfilesRequest {
                subject_id: ada.clone(),
                merged_subject_id: bo.clone(),
                reason: "same customer confirmed by the call centre".to_owned(),
            },
        ))
        .await
        .unwrap();
    let merged = suite
        .aggregates_until(&ada, |a| a.is_some_and(|a| a["orders"] == 3))
        .await
        .unwrap();
    assert_eq!(merged["visit_days"], 3);
    assert_eq!(merged["orders_not_valued"], 1);
    assert_eq!(merged["first_purchase_at"], "2026-10-03T12:00:00Z");
    assert!(suite.exported(&bo).await.is_empty());
    let orders = suite
        .exported(&ada)
        .await
        .into_iter()
        .filter(|(category, _)| category == "segmentation.orders")
        .count();
    assert_eq!(orders, 4);
    // Their product lines too: and B-1 each had one (the refund named none).
    let lines = suite
        .exported(&ada)
        .await
        .into_iter()
        .filter(|(category, _)| category == "segmentation.order_lines")
        .count();
    assert_eq!(lines, 3);

    // Restricted at profiles: restricted here too.
    let request = uuid::Uuid::now_v7().to_string();
    suite
        .at_profiles(async |mut client, token| {
            client
                .restrict(call(
                    &token,
                    privacy::RestrictRequest {
                        subject_id: ada.clone(),
                        request_id: request.clone(),
                        restricted: true,
                    },
                ))
                .await
                .unwrap()
        })
        .await;
    suite
        .aggregates_until(&ada, |a| a.is_some_and(|a| a["restricted"] == true))
        .await;

    // Erased at profiles: nothing of the customer stays here.
    suite
        .at_profiles(async |mut client, token| {
            client
                .erase(call(
                    &token,
                    privacy::EraseRequest {
                        subject_id: ada.clone(),
                        request_id: uuid::Uuid::now_v7().to_string(),
                    },
                ))
                .await
                .unwrap()
        })
        .await;
    suite.aggregates_until(&ada, |a| a.is_none()).await;
    assert!(suite.exported(&ada).await.is_empty());
}

#[tokio::test]
async fn its_own_erasure_is_idempotent_and_restriction_is_kept() {
    let suite = Suite::start().await;
    let ada = suite.customer("ada@example.com").await;
    suite
        .record(vec![order(&ada, "A-1", 3, 4_990, "EUR")])
        .await;
    suite
        .aggregates_until(&ada, |a| a.is_some_and(|a| a["orders"] == 1))
        .await;
    let mut client = suite.segmentation.client(PersonalDataClient::new);
    let token = suite.token("segmentation", &[Scope::PrivacyExecute]);
    let restricted = client
        .restrict(call(
            &token,
            privacy::RestrictRequest {
                subject_id: ada.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
                restricted: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(restricted.restricted);
    suite
        .aggregates_until(&ada, |a| a.is_some_and(|a| a["restricted"] == true))
        .await;

    let request = uuid::Uuid::now_v7().to_string();
    let erase = || {
        let mut client = client.clone();
        let (token, ada, request) = (token.clone(), ada.clone(), request.clone());
        async move {
            client
                .erase(call(
                    &token,
                    privacy::EraseRequest {
                        subject_id: ada,
                        request_id: request,
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .receipt
                .unwrap()
        }
    };
    let first = erase().await;
    assert!(!first.replayed);
    let counts: Vec<(&str, u64)> = first
        .erased
        .iter()
        .map(|e| (e.category.as_str(), e.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("segmentation.aggregates", 1),
            // No country, locale or custom attribute at profiles.
            ("segmentation.attributes", 0),
            ("segmentation.orders", 1),
            ("segmentation.visits", 0),
            ("segmentation.rfm", 0),
            // The order's one line (tent-2p).
            ("segmentation.order_lines", 1),
            ("segmentation.product_views", 0),
            ("segmentation.survey_answers", 0),
            ("segmentation.memberships", 0),
            ("segmentation.objections", 0)
        ]
    );
    let again = erase().await;
    assert!(again.replayed);
    assert_eq!(again.erased, first.erased);
    assert!(suite.exported(&ada).await.is_empty());

    let bad = client
        .erase(call(
            &token,
            privacy::EraseRequest {
                subject_id: "not a subject".to_owned(),
                request_id: request.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    // Without privacy.execute, nothing.
    let denied = client
        .export(call(
            &suite.token("segmentation", &[Scope::SegmentsRead]),
            privacy::ExportRequest {
                subject_id: ada.clone(),
                request_id: request,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn changes_read_after_an_erasure_here_do_not_bring_the_subject_back() {
    let suite = Suite::start().await;
    let ada = suite.customer("ada@example.com").await;
    let bo = suite.customer("bo@example.com").await;
    suite
        .record(vec![order(&ada, "A-1", 3, 4_990, "EUR")])
        .await;
    suite
        .aggregates_until(&ada, |a| a.is_some_and(|a| a["orders"] == 1))
        .await;
    suite
        .segmentation
        .client(PersonalDataClient::new)
        .erase(call(
            &suite.token("segmentation", &[Scope::PrivacyExecute]),
            privacy::EraseRequest {
                subject_id: ada.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap();
    assert!(suite.exported(&ada).await.is_empty());

    // Changes of Ada's that reach segmentation after its erasure, as those recorded at profiles
    // just before the erasure there and read by the feed after it; then Bo's, which the feed
    // delivers after them.
    suite
        .record(vec![
            order(&ada, "A-2", 2, 1_000, "EUR"),
            view(&ada, "a1", 2, 9),
        ])
        .await;
    suite.record(vec![order(&bo, "B-1", 2, 2_000, "EUR")]).await;
    suite
        .aggregates_until(&bo, |a| a.is_some_and(|a| a["orders"] == 1))
        .await;
    assert!(suite.exported(&ada).await.is_empty());
}

#[tokio::test]
async fn migrations_revert_cleanly() {
    ecrm_testkit::assert_migrations_revert(&SERVICE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn several_replicas_following_the_feed_count_each_view_once() {
    let suite = Suite::start_with_replicas(3).await;
    let ada = suite.customer("ada@example.com").await;
    let views = 30;
    for n in 0..views {
        suite.record(vec![view(&ada, &format!("r{n}"), 3, 9)]).await;
    }
    let counted = || async {
        suite
            .exported(&ada)
            .await
            .into_iter()
            .filter(|(category, _)| category == "segmentation.visits")
            .map(|(_, visit)| visit["views"].as_i64().unwrap_or_default())
            .sum::<i64>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while counted().await < views {
        assert!(std::time::Instant::now() < deadline, "views not projected");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Replicas that lost a race must not add theirs later.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(counted().await, views);
}
