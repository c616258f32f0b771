//! A running profiles service on its own database, trusting a test issuer, and helpers to call
//! it as internal services, operators and partners.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

pub mod partners;

use std::sync::Arc;
use std::time::Duration;

use ecrm_auth::{Scope, Scopes};
use ecrm_crypto::MasterKey;
use ecrm_platform::ServiceContext;
use ecrm_profiles::{
    NothingShared, PURPOSE_HEADER, Profiles, ProfilesConfig, SERVICE, SharingPolicy,
};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
use ecrm_proto::ecrm::profiles::v1::partner_sync_client::PartnerSyncClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;

pub struct Harness {
    pub database: TestDatabase,
    pub server: TestServer,
    pub auth: Arc<TestAuth>,
    pub master: Arc<MasterKey>,
    /// The consent service, when the harness runs one.
    pub consent: Option<TestServer>,
    sharing: Arc<dyn SharingPolicy>,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn config(master: Arc<MasterKey>) -> ProfilesConfig {
    ProfilesConfig {
        feed_poll_interval: Duration::from_millis(50),
        ..ProfilesConfig::new(master)
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(Arc::new(NothingShared)).await
    }

    /// A service where `sharing` says what subjects share with partners.
    pub async fn start_with(sharing: Arc<dyn SharingPolicy>) -> Self {
        let database = TestDatabase::new(&[&SERVICE]).await;
        Self::start_on(database, Arc::new(TestAuth::new()), sharing, None).await
    }

    /// Profiles and a consent service on one database, profiles asking consent what subjects
    /// share with partners, with tokens both trust.
    pub async fn start_with_consent() -> Self {
        let database = TestDatabase::new(&[&SERVICE, &ecrm_consent::SERVICE]).await;
        let auth = Arc::new(TestAuth::new());
        let consent_db = database.db(&ecrm_consent::SERVICE).await.unwrap();
        let consent = ecrm_consent::Consent::new(
            &ServiceContext::new(consent_db, CancellationToken::new()),
            &ecrm_consent::ConsentConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("consent").await,
        )
        .unwrap();
        let consent = start_server(consent.routes()).await.unwrap();
        let sharing = Arc::new(ecrm_profiles::ConsentSharing::new(
            consent.channel(),
            auth.clone(),
        ));
        Self::start_on(database, auth, sharing, Some(consent)).await
    }

    async fn start_on(
        database: TestDatabase,
        auth: Arc<TestAuth>,
        sharing: Arc<dyn SharingPolicy>,
        consent: Option<TestServer>,
    ) -> Self {
        let master = Arc::new(MasterKey::generate().unwrap().0);
        let shutdown = CancellationToken::new();
        let server = serve(
            &database,
            &auth,
            master.clone(),
            sharing.clone(),
            shutdown.clone(),
        )
        .await;
        Self {
            database,
            server,
            auth,
            master,
            consent,
            sharing,
            shutdown,
        }
    }

    /// Stops the server and starts a new one on the same database and keys.
    pub async fn restart(&mut self) {
        self.shutdown.cancel();
        let old = std::mem::replace(
            &mut self.server,
            serve(
                &self.database,
                &self.auth,
                self.master.clone(),
                self.sharing.clone(),
                {
                    self.shutdown = CancellationToken::new();
                    self.shutdown.clone()
                },
            )
            .await,
        );
        old.stop().await.unwrap();
    }

    pub fn profiles(&self) -> ProfilesClient<Channel> {
        self.server.client(ProfilesClient::new)
    }

    pub fn partner_sync(&self) -> PartnerSyncClient<Channel> {
        self.server.client(PartnerSyncClient::new)
    }

    pub fn interactions(&self) -> InteractionsClient<Channel> {
        self.server.client(InteractionsClient::new)
    }

    /// An internal service's token with every profiles scope.
    pub fn internal(&self) -> String {
        self.token(TokenSpec::internal(
            "profiles",
            scopes(&[
                Scope::ProfilesRead,
                Scope::ProfilesWrite,
                Scope::EventsWrite,
            ]),
        ))
    }

    pub fn partner(&self, partner_id: &str) -> String {
        self.token(TokenSpec::partner(
            "profiles",
            partner_id,
            scopes(&[
                Scope::ProfilesRead,
                Scope::ProfilesWrite,
                Scope::EventsWrite,
            ]),
        ))
    }

    pub fn token(&self, spec: TokenSpec) -> String {
        self.auth.token(&spec)
    }

    /// Upserts a profile with one email (and the given names) as an internal service.
    pub async fn upsert_email(&self, email: &str, given_name: &str) -> pb::Profile {
        self.profiles()
            .upsert_profile(call(
                &self.internal(),
                pb::UpsertProfileRequest {
                    identifiers: vec![new_identifier(email_id(email))],
                    attributes: Some(pb::ProfileAttributes {
                        given_name: given_name.to_owned(),
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
            .unwrap()
    }

    pub async fn get(&self, subject_id: &str) -> Result<pb::Profile, tonic::Status> {
        self.profiles()
            .get_profile(read(
                &self.internal(),
                pb::GetProfileRequest {
                    subject: Some(by_id(subject_id)),
                },
            ))
            .await
            .map(|r| r.into_inner().profile.unwrap())
    }
}

async fn serve(
    database: &TestDatabase,
    auth: &TestAuth,
    master: Arc<MasterKey>,
    sharing: Arc<dyn SharingPolicy>,
    shutdown: CancellationToken,
) -> TestServer {
    let db = database.db(&SERVICE).await.unwrap();
    let verifier = auth.verifier("profiles").await;
    let profiles = Profiles::with_sharing(
        ServiceContext::new(db, shutdown.clone()),
        config(master),
        verifier,
        sharing,
    )
    .unwrap();
    start_server(profiles.routes()).await.unwrap()
}

pub fn scopes(list: &[Scope]) -> Scopes {
    list.iter().copied().collect()
}

/// A request with a bearer token.
pub fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A request that reads personal data for customer service.
pub fn read<T>(token: &str, message: T) -> Request<T> {
    read_for(token, "customer_service", message)
}

pub fn read_for<T>(token: &str, purpose: &str, message: T) -> Request<T> {
    let mut request = call(token, message);
    request
        .metadata_mut()
        .insert(PURPOSE_HEADER, purpose.parse().unwrap());
    request
}

pub fn email_id(email: &str) -> common::Identifier {
    common::Identifier {
        kind: common::IdentifierKind::Email.into(),
        value: email.to_owned(),
        ..Default::default()
    }
}

pub fn phone_id(phone: &str) -> common::Identifier {
    common::Identifier {
        kind: common::IdentifierKind::Phone.into(),
        value: phone.to_owned(),
        ..Default::default()
    }
}

pub fn partner_ref(partner_id: &str, external_id: &str) -> common::Identifier {
    common::Identifier {
        kind: common::IdentifierKind::PartnerReference.into(),
        value: external_id.to_owned(),
        partner_id: partner_id.to_owned(),
        ..Default::default()
    }
}

pub fn new_identifier(identifier: common::Identifier) -> pb::NewIdentifier {
    pb::NewIdentifier {
        identifier: Some(identifier),
        ..Default::default()
    }
}

pub fn by_id(subject_id: &str) -> common::SubjectRef {
    common::SubjectRef {
        subject: Some(common::subject_ref::Subject::SubjectId(
            subject_id.to_owned(),
        )),
    }
}

pub fn by_identifier(identifier: common::Identifier) -> common::SubjectRef {
    common::SubjectRef {
        subject: Some(common::subject_ref::Subject::Identifier(identifier)),
    }
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

/// An interaction on the web a minute ago.
pub fn interaction(
    event_id: &str,
    subject_id: &str,
    details: pb::interaction::Details,
) -> pb::Interaction {
    pb::Interaction {
        event_id: event_id.to_owned(),
        subject: Some(by_id(subject_id)),
        channel: pb::Channel::Web.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 60,
            nanos: 0,
        }),
        details: Some(details),
    }
}

/// An order interaction.
pub fn order(
    event_id: &str,
    subject_id: &str,
    order_id: &str,
    amount_minor: i64,
    currency: &str,
) -> pb::Interaction {
    interaction(
        event_id,
        subject_id,
        pb::interaction::Details::Order(pb::Order {
            order_id: order_id.to_owned(),
            total: Some(common::Money {
                amount_minor,
                currency: currency.to_owned(),
            }),
            line_items: vec![pb::LineItem {
                product_id: "sku-1".to_owned(),
                category: "shoes".to_owned(),
                quantity: 1,
                unit_price: Some(common::Money {
                    amount_minor,
                    currency: currency.to_owned(),
                }),
            }],
        }),
    )
}

/// Sends `batches` on one RecordInteractions stream.
pub async fn record(
    harness: &Harness,
    token: &str,
    batches: Vec<Vec<pb::Interaction>>,
) -> Result<pb::RecordInteractionsResponse, tonic::Status> {
    let stream = futures::stream::iter(
        batches
            .into_iter()
            .map(|interactions| pb::RecordInteractionsRequest { interactions }),
    );
    harness
        .interactions()
        .record_interactions(call(token, stream))
        .await
        .map(tonic::Response::into_inner)
}

pub async fn list_interactions(
    harness: &Harness,
    subject_id: &str,
) -> Vec<pb::RecordedInteraction> {
    harness
        .interactions()
        .list_interactions(read(
            &harness.internal(),
            pb::ListInteractionsRequest {
                subject_id: subject_id.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .interactions
}

impl Harness {
    /// The data subject request orchestrator's token.
    pub fn orchestrator(&self) -> String {
        self.token(TokenSpec::internal(
            "profiles",
            scopes(&[Scope::PrivacyExecute]),
        ))
    }

    pub fn personal_data(
        &self,
    ) -> ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient<Channel> {
        self.server
            .client(ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient::new)
    }

    /// Every exported record as (category, document).
    pub async fn export(&self, subject_id: &str) -> Vec<(String, serde_json::Value)> {
        use futures::TryStreamExt as _;
        let stream = self
            .personal_data()
            .export(call(
                &self.orchestrator(),
                ecrm_proto::ecrm::privacy::v1::ExportRequest {
                    subject_id: subject_id.to_owned(),
                    request_id: uuid::Uuid::now_v7().to_string(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        stream
            .map_ok(|r| (r.category, serde_json::from_str(&r.document_json).unwrap()))
            .try_collect()
            .await
            .unwrap()
    }

    /// Runs `work` on the service's own database connection.
    pub async fn sql<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut diesel::PgConnection) -> Result<T, diesel::result::Error>
        + Send
        + 'static,
    ) -> T {
        let db = self.database.db(&SERVICE).await.unwrap();
        db.run(move |conn| work(conn).map_err(ecrm_platform::DbError::from))
            .await
            .unwrap()
    }
}
