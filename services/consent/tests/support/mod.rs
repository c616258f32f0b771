//! A running consent service on its own database, trusting a test issuer, and helpers to call
//! it.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

pub mod mailing;

use std::sync::Arc;

use ecrm_auth::{Scope, Scopes};
use ecrm_consent::{Consent, ConsentConfig, SERVICE};
use ecrm_crypto::MasterKey;
use ecrm_platform::ServiceContext;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;

pub struct Harness {
    pub database: TestDatabase,
    pub server: TestServer,
    pub auth: Arc<TestAuth>,
    pub shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Harness {
    pub async fn start() -> Self {
        let database = TestDatabase::new(&[&SERVICE]).await;
        let auth = Arc::new(TestAuth::new());
        let shutdown = CancellationToken::new();
        let consent = consent(&database, &auth, shutdown.clone()).await;
        let server = start_server(consent.routes()).await.unwrap();
        Self {
            database,
            server,
            auth,
            shutdown,
        }
    }

    /// Consent following a profiles service that runs on the same database; returns the
    /// profiles server too.
    pub async fn start_following_profiles() -> (Self, TestServer) {
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
        let server = serve_following(&database, &auth, &profiles, shutdown.clone()).await;
        (
            Self {
                database,
                server,
                auth,
                shutdown,
            },
            profiles,
        )
    }

    /// Stops this consent service and starts another on the same database, following
    /// `profiles`, as a restart would.
    pub async fn restart_following(&mut self, profiles: &TestServer) {
        self.shutdown.cancel();
        self.shutdown = CancellationToken::new();
        self.server =
            serve_following(&self.database, &self.auth, profiles, self.shutdown.clone()).await;
    }

    pub fn purposes(&self) -> PurposesClient<Channel> {
        self.server.client(PurposesClient::new)
    }

    pub fn consents(&self) -> ConsentsClient<Channel> {
        self.server.client(ConsentsClient::new)
    }

    /// An internal service's token with both consent scopes.
    pub fn internal(&self) -> String {
        self.token(TokenSpec::internal(
            "consent",
            [
                Scope::ConsentRead,
                Scope::ConsentWrite,
                Scope::DsrSubmit,
                Scope::DsrManage,
            ]
            .into_iter()
            .collect::<Scopes>(),
        ))
    }

    pub fn token(&self, spec: TokenSpec) -> String {
        self.auth.token(&spec)
    }

    /// Defines a purpose as an internal service.
    pub async fn define(
        &self,
        key: &str,
        basis: common::LawfulBasis,
        channels: &[pb::Channel],
    ) -> pb::Purpose {
        self.purposes()
            .define_purpose(call(
                &self.internal(),
                pb::DefinePurposeRequest {
                    purpose: Some(purpose(key, basis, channels)),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .purpose
            .unwrap()
    }

    /// Publishes a notice of `key`; returns its version.
    pub async fn notice(&self, key: &str, text: &str) -> String {
        self.purposes()
            .publish_notice(call(
                &self.internal(),
                pb::PublishNoticeRequest {
                    purpose_key: key.to_owned(),
                    text: text.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .version
    }

    pub async fn record(
        &self,
        request: pb::RecordConsentRequest,
    ) -> Result<pb::LedgerEntry, tonic::Status> {
        self.consents()
            .record_consent(call(&self.internal(), request))
            .await
            .map(|r| r.into_inner().entry.unwrap())
    }

    pub async fn check(
        &self,
        key: &str,
        channel: pb::Channel,
        subjects: &[String],
    ) -> Result<Vec<pb::SubjectDecision>, tonic::Status> {
        self.consents()
            .check_consent(call(
                &self.internal(),
                pb::CheckConsentRequest {
                    purpose_key: key.to_owned(),
                    channel: channel.into(),
                    subject_ids: subjects.to_vec(),
                },
            ))
            .await
            .map(|r| r.into_inner().decisions)
    }

    /// Runs `sql` on the service's own database connection, as the service's own role; the
    /// error's text when it fails.
    pub async fn sql_as_service(&self, sql: &'static str) -> Result<usize, String> {
        use diesel::RunQueryDsl;
        let db = self.database.db(&SERVICE).await.unwrap();
        db.run(move |conn| {
            diesel::sql_query(sql)
                .execute(conn)
                .map_err(ecrm_platform::DbError::from)
        })
        .await
        .map_err(|error| format!("{error:?}"))
    }

    /// Runs `sql` as the server's superuser, as someone tampering with the database would.
    pub async fn superuser(&self, sql: String) {
        use diesel::{Connection, RunQueryDsl};
        let url = self.database.admin_url();
        tokio::task::spawn_blocking(move || {
            let mut conn = diesel::PgConnection::establish(url.expose()).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        })
        .await
        .unwrap();
    }
}

async fn consent(database: &TestDatabase, auth: &TestAuth, shutdown: CancellationToken) -> Consent {
    let db = database.db(&SERVICE).await.unwrap();
    Consent::new(
        &ServiceContext::new(db, shutdown),
        &ConsentConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
        auth.verifier("consent").await,
    )
    .unwrap()
}

async fn serve_following(
    database: &TestDatabase,
    auth: &Arc<TestAuth>,
    profiles: &TestServer,
    shutdown: CancellationToken,
) -> TestServer {
    let consent = consent(database, auth, shutdown)
        .await
        .following_profiles(profiles.channel(), auth.clone());
    start_server(consent.routes()).await.unwrap()
}

pub fn purpose(key: &str, basis: common::LawfulBasis, channels: &[pb::Channel]) -> pb::Purpose {
    pb::Purpose {
        key: key.to_owned(),
        description: format!("{key}, for the tests"),
        lawful_basis: basis.into(),
        channels: channels.iter().map(|c| (*c).into()).collect(),
        data_categories: vec!["email".to_owned()],
        retention_days: 730,
        ..Default::default()
    }
}

/// A grant of `key` on email by `subject`, seen with `notice`.
pub fn grant(subject: &str, key: &str, notice: &str) -> pb::RecordConsentRequest {
    pb::RecordConsentRequest {
        subject_id: subject.to_owned(),
        purpose_key: key.to_owned(),
        decision: pb::Decision::Granted.into(),
        channel: pb::Channel::Email.into(),
        collection_point: "checkout".to_owned(),
        notice_version: notice.to_owned(),
        evidence: Some(pb::Evidence {
            ip_hash: "a".repeat(64),
            user_agent: "Mozilla/5.0".to_owned(),
            form_id: "checkout-v2".to_owned(),
        }),
        expires_at: None,
    }
}

pub fn withdraw(subject: &str, key: &str) -> pb::RecordConsentRequest {
    pb::RecordConsentRequest {
        decision: pb::Decision::Withdrawn.into(),
        notice_version: String::new(),
        collection_point: "preference_centre".to_owned(),
        ..grant(subject, key, "")
    }
}

pub fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// The field a status's BadRequest details name.
pub fn bad_field(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

pub fn new_subject() -> String {
    uuid::Uuid::now_v7().to_string()
}
