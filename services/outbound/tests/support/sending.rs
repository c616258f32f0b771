//! The whole send path running in this process: profiles, consent and (optionally)
//! segmentation, each on its own database, outbound calling them, a real SMTP server
//! (aiosmtpd) for email and real HTTP receivers for SMS and webhooks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecrm_auth::{Scope, Scopes};
use ecrm_crypto::{MasterKey, Secret};
use ecrm_outbound::{Outbound, OutboundConfig, Peers, SERVICE};
use ecrm_platform::{Db, ServiceContext};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::campaigns_client::CampaignsClient;
use ecrm_proto::ecrm::outbound::v1::messages_client::MessagesClient;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{
    HttpSink, SmtpSink, TestAuth, TestDatabase, TestServer, TokenSpec, start_server,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::call;

/// The secret webhooks are signed with in these tests.
pub const WEBHOOK_SECRET: &str = "webhook-test-secret";

/// How the suite's outbound runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub quiet_hours: String,
    pub frequency_cap: u32,
    /// Workers started with the service; 0 to start them in the test.
    pub workers: usize,
    pub claim_secs: u64,
    pub segmentation: bool,
    /// Attempts reaching a provider before a message fails.
    pub max_attempts: u32,
    /// Whether the SMS channel has a provider.
    pub sms: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            quiet_hours: "none".to_owned(),
            frequency_cap: 0,
            workers: 1,
            claim_secs: 120,
            segmentation: false,
            max_attempts: 5,
            sms: true,
        }
    }
}

pub struct Sending {
    database: TestDatabase,
    pub auth: Arc<TestAuth>,
    pub profiles: TestServer,
    pub consent: TestServer,
    pub segmentation: Option<TestServer>,
    pub outbound: TestServer,
    pub service: Outbound,
    /// Outbound's database.
    pub db: Db,
    /// Where outbound serves its unsubscribe pages.
    pub http: SocketAddr,
    pub smtp: SmtpSink,
    pub sms: HttpSink,
    pub webhook: HttpSink,
    pub config: OutboundConfig,
    /// The newsletter's notice, which grants cite.
    notice: std::sync::Mutex<String>,
    shutdown: CancellationToken,
    _stop: tokio_util::sync::DropGuard,
}

impl Sending {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let mut services = vec![&SERVICE, &ecrm_profiles::SERVICE, &ecrm_consent::SERVICE];
        if options.segmentation {
            services.push(&ecrm_segmentation::SERVICE);
        }
        let database = TestDatabase::new(&services).await;
        let auth = Arc::new(TestAuth::new());
        let shutdown = CancellationToken::new();
        let context = |db: Db| ServiceContext::new(db, shutdown.clone());

        let profiles = ecrm_profiles::Profiles::new(
            context(database.db(&ecrm_profiles::SERVICE).await.unwrap()),
            ecrm_profiles::ProfilesConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("profiles").await,
        )
        .unwrap();
        let profiles = start_server(profiles.routes()).await.unwrap();
        let consent = ecrm_consent::Consent::new(
            &context(database.db(&ecrm_consent::SERVICE).await.unwrap()),
            &ecrm_consent::ConsentConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("consent").await,
        )
        .unwrap();
        let consent = start_server(consent.routes()).await.unwrap();
        let segmentation = if options.segmentation {
            let segmentation = ecrm_segmentation::Segmentation::new(
                &context(database.db(&ecrm_segmentation::SERVICE).await.unwrap()),
                &ecrm_segmentation::SegmentationConfig::new(),
                auth.verifier("segmentation").await,
            )
            .unwrap()
            .following_profiles(profiles.channel(), auth.clone());
            Some(start_server(segmentation.routes()).await.unwrap())
        } else {
            None
        };

        let smtp = SmtpSink::start().await.unwrap();
        let sms = HttpSink::start().await.unwrap();
        let webhook = HttpSink::start().await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let mut config = OutboundConfig::new(Arc::new(MasterKey::generate().unwrap().0));
        config.unsubscribe.public_url = format!("http://{http}");
        config.delivery.smtp_url = Some(Secret::new(smtp.url()));
        config.delivery.email_from = Some("Shop <news@shop.example>".to_owned());
        config.delivery.sms_url = Some(format!("{}/sms", sms.url()));
        config.delivery.sms_token = Some(Secret::new("sms-token".to_owned()));
        config.delivery.sms_sender = Some("SHOP".to_owned());
        config.delivery.webhook_url = Some(format!("{}/hook", webhook.url()));
        config.delivery.webhook_secret = Some(Secret::new(WEBHOOK_SECRET.to_owned()));
        config.quiet_hours = options.quiet_hours.clone();
        config.frequency_cap = options.frequency_cap;
        config.workers = options.workers.max(1);
        config.claim_secs = options.claim_secs;
        config.retry_base_secs = 1;
        config.rate_limit_pause_secs = 1;
        config.max_attempts = options.max_attempts;
        if !options.sms {
            config.delivery.sms_url = None;
            config.delivery.sms_token = None;
            config.delivery.sms_sender = None;
        }
        config.idle = Duration::from_millis(50);
        config.unsubscribe.retry = ecrm_outbound::unsubscribe::ForwardRetry {
            poll: Duration::from_millis(50),
            first: Duration::from_millis(50),
            max: Duration::from_millis(200),
        };

        let db = database.db(&SERVICE).await.unwrap();
        let service = Outbound::connected(
            &context(db.clone()),
            &config,
            auth.verifier("outbound").await,
            Peers::connect(
                Some(consent.channel()),
                Some(profiles.channel()),
                segmentation.as_ref().map(TestServer::channel),
                auth.clone(),
            ),
        )
        .unwrap();
        tokio::spawn(service.serve_http(listener));
        if options.workers > 0 {
            service.start();
        }
        let outbound = start_server(service.routes()).await.unwrap();
        let suite = Self {
            database,
            auth,
            profiles,
            consent,
            segmentation,
            outbound,
            service,
            db,
            http,
            smtp,
            sms,
            webhook,
            config,
            notice: std::sync::Mutex::new(String::new()),
            shutdown: shutdown.clone(),
            _stop: shutdown.drop_guard(),
        };
        suite.define_purposes().await;
        suite
    }

    /// Another outbound process's worth of service on the same database (its own workers
    /// when started), stopped by cancelling `shutdown`.
    pub async fn another_outbound(&self, shutdown: &CancellationToken) -> Outbound {
        Outbound::connected(
            &ServiceContext::new(self.db.clone(), shutdown.clone()),
            &self.config,
            self.auth.verifier("outbound").await,
            Peers::connect(
                Some(self.consent.channel()),
                Some(self.profiles.channel()),
                self.segmentation.as_ref().map(TestServer::channel),
                self.auth.clone(),
            ),
        )
        .unwrap()
    }

    pub fn token(&self, audience: &str, scopes: &[Scope]) -> String {
        self.auth.token(&TokenSpec::internal(
            audience,
            scopes.iter().copied().collect::<Scopes>(),
        ))
    }

    pub fn sender(&self) -> String {
        self.token("outbound", &[Scope::OutboundSend, Scope::OutboundManage])
    }

    /// Runs `sql` on the suite's database as its administrator.
    pub fn sql(&self, sql: &str) {
        use diesel::{Connection as _, RunQueryDsl as _};
        let mut conn = diesel::PgConnection::establish(self.database.admin_url().expose()).unwrap();
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }

    fn consent_token(&self) -> String {
        self.token("consent", &[Scope::ConsentRead, Scope::ConsentWrite])
    }

    /// The purposes the tests send for: `newsletter` (consent, email, SMS and push),
    /// `order_updates` (contract), `partner_offers` (legitimate interest).
    async fn define_purposes(&self) {
        let mut purposes = self.consent.client(PurposesClient::new);
        for (key, basis) in [
            (NEWSLETTER, common::LawfulBasis::Consent),
            (ORDER_UPDATES, common::LawfulBasis::Contract),
            (PARTNER_OFFERS, common::LawfulBasis::LegitimateInterest),
        ] {
            purposes
                .define_purpose(call(
                    &self.consent_token(),
                    consent::DefinePurposeRequest {
                        purpose: Some(consent::Purpose {
                            key: key.to_owned(),
                            description: format!("{key} messages"),
                            lawful_basis: basis.into(),
                            channels: vec![
                                consent::Channel::Email.into(),
                                consent::Channel::Sms.into(),
                                consent::Channel::Push.into(),
                            ],
                            data_categories: vec!["email".to_owned(), "phone".to_owned()],
                            direct_marketing: basis != common::LawfulBasis::Contract,
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .unwrap();
        }
        let notice = purposes
            .publish_notice(call(
                &self.consent_token(),
                consent::PublishNoticeRequest {
                    purpose_key: NEWSLETTER.to_owned(),
                    text: "Our offers, once a week.".to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .version;
        *self.notice.lock().unwrap() = notice;
    }

    /// A customer with this email (and phone, time zone, locale when given).
    pub async fn customer(
        &self,
        email: &str,
        phone: Option<&str>,
        timezone: Option<&str>,
        locale: Option<&str>,
    ) -> String {
        let mut identifiers = vec![profiles::NewIdentifier {
            identifier: Some(common::Identifier {
                kind: common::IdentifierKind::Email.into(),
                value: email.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        if let Some(phone) = phone {
            identifiers.push(profiles::NewIdentifier {
                identifier: Some(common::Identifier {
                    kind: common::IdentifierKind::Phone.into(),
                    value: phone.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        self.profiles
            .client(ProfilesClient::new)
            .upsert_profile(call(
                &self.token("profiles", &[Scope::ProfilesWrite]),
                profiles::UpsertProfileRequest {
                    identifiers,
                    attributes: Some(profiles::ProfileAttributes {
                        given_name: "Ada".to_owned(),
                        timezone: timezone.unwrap_or_default().to_owned(),
                        locale: locale.unwrap_or_default().to_owned(),
                        ..Default::default()
                    }),
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

    /// Records `decision` on `purpose` by `channel` for `subject`, through consent's API.
    pub async fn decide(
        &self,
        subject: &str,
        purpose: &str,
        channel: consent::Channel,
        decision: consent::Decision,
        expires_at: Option<prost_types::Timestamp>,
    ) {
        let notice = self.notice.lock().unwrap().clone();
        self.consent
            .client(ConsentsClient::new)
            .record_consent(call(
                &self.consent_token(),
                consent::RecordConsentRequest {
                    subject_id: subject.to_owned(),
                    purpose_key: purpose.to_owned(),
                    decision: decision.into(),
                    channel: channel.into(),
                    collection_point: "checkout".to_owned(),
                    notice_version: if decision == consent::Decision::Granted {
                        notice
                    } else {
                        String::new()
                    },
                    evidence: None,
                    expires_at,
                },
            ))
            .await
            .unwrap();
    }

    pub async fn grant(&self, subject: &str, channel: consent::Channel) {
        self.decide(
            subject,
            NEWSLETTER,
            channel,
            consent::Decision::Granted,
            None,
        )
        .await;
    }

    pub async fn template(
        &self,
        key: &str,
        channel: pb::Channel,
        subject: &str,
        body: &str,
        variables: &[&str],
    ) {
        self.outbound
            .client(TemplatesClient::new)
            .upsert_template(call(
                &self.sender(),
                pb::UpsertTemplateRequest {
                    template: Some(pb::Template {
                        key: key.to_owned(),
                        channel: channel.into(),
                        locale: "en".to_owned(),
                        subject: subject.to_owned(),
                        body: body.to_owned(),
                        variables: variables.iter().map(|v| (*v).to_owned()).collect(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
    }

    pub async fn send(
        &self,
        request: pb::SendTransactionalRequest,
    ) -> Result<pb::SendTransactionalResponse, tonic::Status> {
        self.outbound
            .client(MessagesClient::new)
            .send_transactional(call(&self.sender(), request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn message(&self, id: &str) -> pb::Message {
        self.outbound
            .client(MessagesClient::new)
            .get_message(call(
                &self.sender(),
                pb::GetMessageRequest {
                    message_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap()
    }

    /// Waits until message `id` is in `status`.
    pub async fn message_until(&self, id: &str, status: pb::MessageStatus) -> pb::Message {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let message = self.message(id).await;
            if message.status() == status {
                return message;
            }
            assert!(
                Instant::now() < deadline,
                "message {id} stayed {:?} ({:?}: {}), not {status:?}",
                message.status(),
                message.reason(),
                message.detail
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn campaigns(&self) -> CampaignsClient<tonic::transport::Channel> {
        self.outbound.client(CampaignsClient::new)
    }

    /// Waits until the campaign has nothing queued (sent, blocked, failed or cancelled, or
    /// deferred when `deferred_counts` is true); returns its statistics.
    pub async fn campaign_until_settled(
        &self,
        id: &str,
        deferred_counts: bool,
    ) -> pb::GetCampaignStatsResponse {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = self
                .campaigns()
                .get_campaign_stats(call(
                    &self.sender(),
                    pb::GetCampaignStatsRequest {
                        campaign_id: id.to_owned(),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            if stats.queued == 0 && (deferred_counts || stats.deferred == 0) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "the campaign did not settle: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Another outbound process configured by `config`, with its own connection pool to the
    /// suite's database, stopped by cancelling `shutdown`. Build it inside the runtime it is to
    /// run on: its SMTP pool and its workers live there.
    pub async fn another_process(
        &self,
        shutdown: &CancellationToken,
        config: &OutboundConfig,
    ) -> Outbound {
        Outbound::connected(
            &ServiceContext::new(self.database.db(&SERVICE).await.unwrap(), shutdown.clone()),
            config,
            self.auth.verifier("outbound").await,
            Peers::connect(
                Some(self.consent.channel()),
                Some(self.profiles.channel()),
                self.segmentation.as_ref().map(TestServer::channel),
                self.auth.clone(),
            ),
        )
        .unwrap()
    }

    /// Runs `sql`, a query giving one bigint column named `count`, on the suite's database as
    /// its administrator.
    pub fn sql_count(&self, sql: &str) -> i64 {
        use diesel::{Connection as _, RunQueryDsl as _};
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            count: i64,
        }
        let mut conn = diesel::PgConnection::establish(self.database.admin_url().expose()).unwrap();
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .unwrap()
            .count
    }
}

pub const NEWSLETTER: &str = "newsletter";
pub const ORDER_UPDATES: &str = "order_updates";
pub const PARTNER_OFFERS: &str = "partner_offers";

/// Customers, consent and data subject requests as the other services record them, and the
/// messages outbound keeps of a customer.
impl Sending {
    /// A customer with this email and these attributes (a country, a time zone, ...).
    pub async fn customer_with(
        &self,
        email: &str,
        attributes: profiles::ProfileAttributes,
    ) -> String {
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
                    attributes: Some(attributes),
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

    /// What consent's CheckConsent says of `subject` for `purpose` by `channel` now.
    pub async fn consent_reason(
        &self,
        subject: &str,
        purpose: &str,
        channel: consent::Channel,
    ) -> consent::Reason {
        self.consent
            .client(ConsentsClient::new)
            .check_consent(call(
                &self.consent_token(),
                consent::CheckConsentRequest {
                    purpose_key: purpose.to_owned(),
                    channel: channel.into(),
                    subject_ids: vec![subject.to_owned()],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .decisions[0]
            .reason()
    }

    /// Waits until consent says `reason` of `subject` for `purpose` by email.
    pub async fn consent_reason_until(
        &self,
        subject: &str,
        purpose: &str,
        reason: consent::Reason,
    ) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self
                .consent_reason(subject, purpose, consent::Channel::Email)
                .await;
            if now == reason {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "consent stayed {now:?}, not {reason:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The subject's entries in consent's ledger, oldest first.
    pub async fn consent_history(&self, subject: &str) -> Vec<consent::LedgerEntry> {
        self.consent
            .client(ConsentsClient::new)
            .list_consent_history(call(
                &self.consent_token(),
                consent::ListConsentHistoryRequest {
                    subject_id: subject.to_owned(),
                    page: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    /// Restricts the processing of `subject` (Art. 18) where `service` ("profiles" or
    /// "consent") keeps it, as the request orchestrator does through `PersonalData.Restrict`.
    pub async fn restrict_at(&self, service: &str, subject: &str) {
        use ecrm_proto::ecrm::privacy::v1 as privacy;
        use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
        let server = match service {
            "profiles" => &self.profiles,
            "consent" => &self.consent,
            other => panic!("no personal data served by {other}"),
        };
        let restricted = server
            .client(PersonalDataClient::new)
            .restrict(call(
                &self.token(service, &[Scope::PrivacyExecute]),
                privacy::RestrictRequest {
                    subject_id: subject.to_owned(),
                    request_id: uuid::Uuid::now_v7().to_string(),
                    restricted: true,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .restricted;
        assert!(restricted);
    }

    /// The subject objects to direct marketing (Art. 21(3)): an OBJECTION request submitted,
    /// its requester verified and the request approved at consent.
    pub async fn object(&self, subject: &str) {
        use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
        let token = self.token("consent", &[Scope::DsrSubmit, Scope::DsrManage]);
        let mut requests = self.consent.client(DataSubjectRequestsClient::new);
        let id = requests
            .submit_request(call(
                &token,
                consent::SubmitRequestRequest {
                    subject: Some(common::SubjectRef {
                        subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
                    }),
                    r#type: consent::RequestType::Objection.into(),
                    channel: consent::RequestChannel::Email.into(),
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
                consent::VerifyRequesterRequest {
                    request_id: id.clone(),
                    reason: "replied from the address on file".to_owned(),
                },
            ))
            .await
            .unwrap();
        let approved = requests
            .approve_request(call(
                &token,
                consent::ApproveRequestRequest { request_id: id },
            ))
            .await
            .unwrap()
            .into_inner()
            .request
            .unwrap();
        assert_eq!(approved.status(), consent::RequestStatus::Completed);
    }

    /// Every message of `subject`, newest first.
    pub async fn messages_of(&self, subject: &str) -> Vec<pb::Message> {
        let mut messages = Vec::new();
        let mut page_token = String::new();
        loop {
            let response = self
                .outbound
                .client(MessagesClient::new)
                .list_messages(call(
                    &self.sender(),
                    pb::ListMessagesRequest {
                        subject_id: subject.to_owned(),
                        page: Some(common::PageRequest {
                            page_size: 500,
                            page_token,
                        }),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            messages.extend(response.messages);
            page_token = response.page.map(|p| p.next_page_token).unwrap_or_default();
            if page_token.is_empty() {
                return messages;
            }
        }
    }

    /// A connection to the suite's database as its administrator.
    pub fn admin_connection(&self) -> diesel::PgConnection {
        use diesel::Connection as _;
        diesel::PgConnection::establish(self.database.admin_url().expose()).unwrap()
    }
}
