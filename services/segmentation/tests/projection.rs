//! The projection of the profiles change feed, through the running services: profiles and
//! segmentation in this process on one database, segmentation's view read through its
//! `PersonalData.Export`.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ecrm_auth::Scope;
use ecrm_crypto::MasterKey;
use ecrm_platform::ServiceContext;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_segmentation::{SERVICE, Segmentation, SegmentationConfig};
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use futures::TryStreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::Request;

fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

struct Suite {
    _database: TestDatabase,
    auth: Arc<TestAuth>,
    profiles: TestServer,
    segmentation: TestServer,
    _shutdown: tokio_util::sync::DropGuard,
}

impl Suite {
    async fn start() -> Self {
        let database = TestDatabase::new(&[&SERVICE, &ecrm_profiles::SERVICE]).await;
        let auth = Arc::new(TestAuth::new());
        let shutdown = CancellationToken::new();
        let profiles = ecrm_profiles::Profiles::new(
            ServiceContext::new(
                database.db(&ecrm_profiles::SERVICE).await.unwrap(),
                shutdown.clone(),
            ),
            ecrm_profiles::ProfilesConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("profiles").await,
        )
        .unwrap();
        let profiles = start_server(profiles.routes()).await.unwrap();
        let config = SegmentationConfig {
            exchange_rates: vec!["USD=0.92".to_owned()],
            ..SegmentationConfig::new()
        };
        let segmentation = Segmentation::new(
            &ServiceContext::new(database.db(&SERVICE).await.unwrap(), shutdown.clone()),
            &config,
            auth.verifier("segmentation").await,
        )
        .unwrap()
        .following_profiles(profiles.channel(), auth.clone());
        let segmentation = start_server(segmentation.routes()).await.unwrap();
        Self {
            _database: database,
            auth,
            profiles,
            segmentation,
            _shutdown: shutdown.drop_guard(),
        }
    }

    fn token(&self, audience: &str, scopes: &[Scope]) -> String {
        self.auth.token(&TokenSpec::internal(
            audience,
            scopes.iter().copied().collect(),
        ))
    }

    async fn customer(&self, email: &str) -> String {
        self.profiles
            .client(ProfilesClient::new)
            .upsert_profile(call(
                &self.token("profiles", &[Scope::ProfilesWrite]),
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

    async fn record(&self, interactions: Vec<profiles::Interaction>) {
        self.profiles
            .client(InteractionsClient::new)
            .record_interactions(call(
                &self.token("profiles", &[Scope::EventsWrite]),
                futures::stream::iter([profiles::RecordInteractionsRequest { interactions }]),
            ))
            .await
            .unwrap();
    }

    /// What segmentation holds about `subject`, by category.
    async fn exported(&self, subject: &str) -> Vec<(String, serde_json::Value)> {
        self.segmentation
            .client(PersonalDataClient::new)
            .export(call(
                &self.token("segmentation", &[Scope::PrivacyExecute]),
                privacy::ExportRequest {
                    subject_id: subject.to_owned(),
                    request_id: uuid::Uuid::now_v7().to_string(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .map_ok(|r| (r.category, serde_json::from_str(&r.document_json).unwrap()))
            .try_collect()
            .await
            .unwrap()
    }

    /// Waits until segmentation's aggregates of `subject` satisfy `ready`; returns them.
    async fn aggregates_until(
        &self,
        subject: &str,
        ready: impl Fn(Option<&serde_json::Value>) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let exported = self.exported(subject).await;
            let aggregates = exported
                .iter()
                .find(|(category, _)| category == "segmentation.aggregates")
                .map(|(_, document)| document.clone());
            if ready(aggregates.as_ref()) {
                return aggregates;
            }
            assert!(
                Instant::now() < deadline,
                "not projected as expected: {exported:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn at_profiles<T>(
        &self,
        f: impl AsyncFnOnce(PersonalDataClient<tonic::transport::Channel>, String) -> T,
    ) -> T {
        f(
            self.profiles.client(PersonalDataClient::new),
            self.token("profiles", &[Scope::PrivacyExecute]),
        )
        .await
    }
}

fn at(day: u32, hour: u32) -> Option<prost_types::Timestamp> {
    let time = chrono::NaiveDate::from_ymd_opt(2026, 10, day)
        .unwrap()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc();
    Some(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: 0,
    })
}

fn money(amount_minor: i64, currency: &str) -> Option<common::Money> {
    Some(common::Money {
        amount_minor,
        currency: currency.to_owned(),
    })
}

fn subject_ref(subject: &str) -> Option<common::SubjectRef> {
    Some(common::SubjectRef {
        subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
    })
}

fn order(subject: &str, id: &str, day: u32, amount: i64, currency: &str) -> profiles::Interaction {
    profiles::Interaction {
        event_id: format!("order-{id}"),
        subject: subject_ref(subject),
        channel: profiles::Channel::Web.into(),
        occurred_at: at(day, 12),
        details: Some(profiles::interaction::Details::Order(profiles::Order {
            order_id: id.to_owned(),
            total: money(amount, currency),
            line_items: vec![profiles::LineItem {
                product_id: "tent-2p".to_owned(),
                category: "camping".to_owned(),
                quantity: 1,
                unit_price: money(amount, currency),
            }],
        })),
    }
}

fn refund(subject: &str, id: &str, day: u32, amount: i64) -> profiles::Interaction {
    profiles::Interaction {
        event_id: format!("return-{id}"),
        subject: subject_ref(subject),
        channel: profiles::Channel::Web.into(),
        occurred_at: at(day, 12),
        details: Some(profiles::interaction::Details::ProductReturn(
            profiles::ProductReturn {
                order_id: id.to_owned(),
                refund: money(amount, "EUR"),
                line_items: Vec::new(),
                reason: "too small".to_owned(),
            },
        )),
    }
}

fn view(subject: &str, id: &str, day: u32, hour: u32) -> profiles::Interaction {
    profiles::Interaction {
        event_id: format!("view-{id}"),
        subject: subject_ref(subject),
        channel: profiles::Channel::Web.into(),
        occurred_at: at(day, hour),
        details: Some(profiles::interaction::Details::PageView(
            profiles::PageView {
                url: "https://shop.example/tents".to_owned(),
                referrer: String::new(),
            },
        )),
    }
}

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
            ("segmentation.orders", 1),
            ("segmentation.visits", 0)
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
async fn migrations_revert_cleanly() {
    ecrm_testkit::assert_migrations_revert(&SERVICE).await;
}
