//! Profiles and segmentation running in this process on one database, segmentation following
//! profiles' change feed, and helpers to feed and read them.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the suite"
)]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
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
use ecrm_proto::ecrm::segmentation::v1 as segmentation;
use ecrm_proto::ecrm::segmentation::v1::rfm_client::RfmClient;
use ecrm_proto::ecrm::segmentation::v1::segments_client::SegmentsClient;
use ecrm_segmentation::{SERVICE, Segmentation, SegmentationConfig};
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use futures::TryStreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::Request;

pub fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub struct Suite {
    _database: TestDatabase,
    pub auth: Arc<TestAuth>,
    pub profiles: TestServer,
    pub segmentation: TestServer,
    /// Consent, which segmentation follows, when started with it.
    pub consent: Option<TestServer>,
    _shutdown: tokio_util::sync::DropGuard,
}

impl Suite {
    pub async fn start() -> Self {
        Self::start_with(false, 1).await
    }

    /// The suite with consent too, whose ledger segmentation follows for objections.
    pub async fn start_with_consent() -> Self {
        Self::start_with(true, 1).await
    }

    /// The suite with `replicas` segmentation processes on its database, each following the
    /// profiles feed, as a deployment with several replicas runs; the first one serves.
    pub async fn start_with_replicas(replicas: usize) -> Self {
        Self::start_with(false, replicas).await
    }

    async fn start_with(with_consent: bool, replicas: usize) -> Self {
        let mut services = vec![&SERVICE, &ecrm_profiles::SERVICE];
        if with_consent {
            services.push(&ecrm_consent::SERVICE);
        }
        let database = TestDatabase::new(&services).await;
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
        for _ in 1..replicas {
            // Its follower runs until the suite's shutdown; nothing else of it is needed.
            let _follows = Segmentation::new(
                &ServiceContext::new(database.db(&SERVICE).await.unwrap(), shutdown.clone()),
                &config,
                auth.verifier("segmentation").await,
            )
            .unwrap()
            .following_profiles(profiles.channel(), auth.clone());
        }
        let mut segmentation = Segmentation::new(
            &ServiceContext::new(database.db(&SERVICE).await.unwrap(), shutdown.clone()),
            &config,
            auth.verifier("segmentation").await,
        )
        .unwrap()
        .following_profiles(profiles.channel(), auth.clone());
        let mut consent = None;
        if with_consent {
            let server = ecrm_consent::Consent::new(
                &ServiceContext::new(
                    database.db(&ecrm_consent::SERVICE).await.unwrap(),
                    shutdown.clone(),
                ),
                &ecrm_consent::ConsentConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
                auth.verifier("consent").await,
            )
            .unwrap();
            let server = start_server(server.routes()).await.unwrap();
            segmentation = segmentation.following_consent(server.channel(), auth.clone());
            consent = Some(server);
        }
        let segmentation = start_server(segmentation.routes()).await.unwrap();
        Self {
            _database: database,
            auth,
            profiles,
            segmentation,
            consent,
            _shutdown: shutdown.drop_guard(),
        }
    }

    /// Runs `sql` on the suite's database as its administrator.
    pub fn sql(&self, sql: &str) {
        use diesel::{Connection as _, RunQueryDsl as _};
        let mut conn =
            diesel::PgConnection::establish(self._database.admin_url().expose()).unwrap();
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }

    pub fn token(&self, audience: &str, scopes: &[Scope]) -> String {
        self.auth.token(&TokenSpec::internal(
            audience,
            scopes.iter().copied().collect(),
        ))
    }

    pub async fn customer(&self, email: &str) -> String {
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

    pub async fn record(&self, interactions: Vec<profiles::Interaction>) {
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
    pub async fn exported(&self, subject: &str) -> Vec<(String, serde_json::Value)> {
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
    pub async fn aggregates_until(
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

    /// A segments client, and a token that reads and defines.
    pub fn segments(&self) -> (SegmentsClient<tonic::transport::Channel>, String) {
        (
            self.segmentation.client(SegmentsClient::new),
            self.token("segmentation", &[Scope::SegmentsRead, Scope::SegmentsWrite]),
        )
    }

    /// Defines the segment and waits until it is populated.
    pub async fn define_populated(&self, name: &str, rule: &str) {
        let (mut client, token) = self.segments();
        client
            .define_segment(call(
                &token,
                segmentation::DefineSegmentRequest {
                    segment: Some(segmentation::Segment {
                        name: name.to_owned(),
                        rule: rule.to_owned(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let segments = client
                .list_segments(call(&token, segmentation::ListSegmentsRequest {}))
                .await
                .unwrap()
                .into_inner()
                .segments;
            if segments
                .iter()
                .any(|s| s.name == name && s.populated_at.is_some())
            {
                return;
            }
            assert!(Instant::now() < deadline, "{name} never populated");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts an RFM computation and waits for it to finish; panics if it fails.
    pub async fn compute_rfm(
        &self,
        request: segmentation::ComputeRfmRequest,
    ) -> segmentation::RfmJob {
        let mut client = self.segmentation.client(RfmClient::new);
        let token = self.token("segmentation", &[Scope::SegmentsRead, Scope::SegmentsWrite]);
        let job = client
            .compute_rfm(call(&token, request))
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = client
                .get_rfm_job(call(
                    &token,
                    segmentation::GetRfmJobRequest {
                        job_id: job.job_id.clone(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .job
                .unwrap();
            match now.state() {
                segmentation::RfmJobState::Done => return now,
                segmentation::RfmJobState::Running => {}
                other => panic!("the job ended {other:?}: {now:?}"),
            }
            assert!(Instant::now() < deadline, "not done: {now:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The customer's score in the latest RFM computation.
    pub async fn rfm_score(&self, subject: &str) -> Result<segmentation::RfmScore, tonic::Status> {
        self.segmentation
            .client(RfmClient::new)
            .get_rfm(call(
                &self.token("segmentation", &[Scope::SegmentsRead]),
                segmentation::GetRfmRequest {
                    subject_id: subject.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().score.unwrap())
    }

    pub async fn at_profiles<T>(
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

pub fn at(day: u32, hour: u32) -> Option<prost_types::Timestamp> {
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

pub fn money(amount_minor: i64, currency: &str) -> Option<common::Money> {
    Some(common::Money {
        amount_minor,
        currency: currency.to_owned(),
    })
}

pub fn subject_ref(subject: &str) -> Option<common::SubjectRef> {
    Some(common::SubjectRef {
        subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
    })
}

pub fn order(
    subject: &str,
    id: &str,
    day: u32,
    amount: i64,
    currency: &str,
) -> profiles::Interaction {
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

pub fn refund(subject: &str, id: &str, day: u32, amount: i64) -> profiles::Interaction {
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

pub fn view(subject: &str, id: &str, day: u32, hour: u32) -> profiles::Interaction {
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
