//! Consent sending verification codes through a real outbound service: profiles holding the
//! subjects' addresses, outbound delivering to a real SMTP server (aiosmtpd), each service on
//! its own schema of one database, all in this process.

use std::sync::Arc;
use std::time::Duration;

use ecrm_auth::{Scope, Scopes};
use ecrm_consent::{Consent, ConsentConfig, SERVICE};
use ecrm_crypto::{MasterKey, Secret};
use ecrm_outbound::{Outbound, OutboundConfig, Peers};
use ecrm_platform::ServiceContext;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_proto::ecrm::outbound::v1 as outbound;
use ecrm_proto::ecrm::outbound::v1::messages_client::MessagesClient;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{SmtpSink, TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use super::call;

/// Outbound's template for the codes, as the tests upsert it.
pub const TEMPLATE: &str = "dsr_verification";

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub code_ttl: Duration,
    /// False: consent's outbound URL points at a closed port.
    pub outbound_reachable: bool,
    /// Whether outbound has the template.
    pub template: bool,
    /// The verification purpose, defined by an operator before consent starts.
    pub purpose_defined_as: Option<common::LawfulBasis>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(24 * 3600),
            outbound_reachable: true,
            template: true,
            purpose_defined_as: None,
        }
    }
}

pub struct Mailing {
    database: TestDatabase,
    pub auth: Arc<TestAuth>,
    pub profiles: TestServer,
    /// Consent as outbound asks it (the same database, sending no codes): each needs the other
    /// running first.
    _consent_for_outbound: TestServer,
    pub outbound: TestServer,
    /// The consent under test, sending codes through outbound.
    pub consent: TestServer,
    pub smtp: SmtpSink,
    _stop: tokio_util::sync::DropGuard,
}

impl Mailing {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let database =
            TestDatabase::new(&[&SERVICE, &ecrm_profiles::SERVICE, &ecrm_outbound::SERVICE]).await;
        let auth = Arc::new(TestAuth::new());
        let shutdown = CancellationToken::new();
        let context = |db| ServiceContext::new(db, shutdown.clone());

        let profiles = ecrm_profiles::Profiles::new(
            context(database.db(&ecrm_profiles::SERVICE).await.unwrap()),
            ecrm_profiles::ProfilesConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("profiles").await,
        )
        .unwrap();
        let profiles = start_server(profiles.routes()).await.unwrap();

        let master = Arc::new(MasterKey::generate().unwrap().0);
        let mut config = ConsentConfig::new(master);
        config.verification_code_ttl = options.code_ttl;
        let consent_db = database.db(&SERVICE).await.unwrap();
        let plain = Consent::new(
            &context(consent_db.clone()),
            &config,
            auth.verifier("consent").await,
        )
        .unwrap();
        let consent_for_outbound = start_server(plain.routes()).await.unwrap();
        if let Some(basis) = options.purpose_defined_as {
            consent_for_outbound
                .client(PurposesClient::new)
                .define_purpose(call(
                    &token(&auth, "consent", &[Scope::ConsentWrite]),
                    pb::DefinePurposeRequest {
                        purpose: Some(super::purpose(
                            ecrm_consent::VERIFICATION_PURPOSE,
                            basis,
                            &[pb::Channel::Email],
                        )),
                    },
                ))
                .await
                .unwrap();
        }

        let smtp = SmtpSink::start().await.unwrap();
        let mut outbound_config = OutboundConfig::new(Arc::new(MasterKey::generate().unwrap().0));
        outbound_config.delivery.smtp_url = Some(Secret::new(smtp.url()));
        outbound_config.delivery.email_from = Some("Shop <privacy@shop.example>".to_owned());
        outbound_config.quiet_hours = "none".to_owned();
        outbound_config.workers = 1;
        outbound_config.retry_base_secs = 1;
        outbound_config.idle = Duration::from_millis(50);
        let service = Outbound::connected(
            &context(database.db(&ecrm_outbound::SERVICE).await.unwrap()),
            &outbound_config,
            auth.verifier("outbound").await,
            Peers::connect(
                Some(consent_for_outbound.channel()),
                Some(profiles.channel()),
                None,
                auth.clone(),
            ),
        )
        .unwrap();
        service.start();
        let outbound = start_server(service.routes()).await.unwrap();

        let outbound_channel = if options.outbound_reachable {
            outbound.channel()
        } else {
            closed_port().await
        };
        let consent = Consent::new(
            &context(consent_db),
            &config,
            auth.verifier("consent").await,
        )
        .unwrap()
        .with_outbound(outbound_channel, auth.clone())
        .await
        .unwrap();
        let consent = start_server(consent.routes()).await.unwrap();

        let mailing = Self {
            database,
            auth,
            profiles,
            _consent_for_outbound: consent_for_outbound,
            outbound,
            consent,
            smtp,
            _stop: shutdown.drop_guard(),
        };
        if options.template {
            mailing.upsert_template().await;
        }
        mailing
    }

    async fn upsert_template(&self) {
        self.outbound
            .client(TemplatesClient::new)
            .upsert_template(call(
                &token(&self.auth, "outbound", &[Scope::OutboundManage]),
                outbound::UpsertTemplateRequest {
                    template: Some(outbound::Template {
                        key: TEMPLATE.to_owned(),
                        channel: outbound::Channel::Email.into(),
                        locale: "en".to_owned(),
                        subject: "Your verification code".to_owned(),
                        body: "Your code for your {{ request_type }} request is {{ code }}. \
                               It works until {{ expires_at }}."
                            .to_owned(),
                        variables: vec![
                            "code".to_owned(),
                            "request_type".to_owned(),
                            "expires_at".to_owned(),
                        ],
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
    }

    /// A customer with this email address at profiles; their subject id.
    pub async fn customer(&self, email: &str) -> String {
        self.profiles
            .client(ProfilesClient::new)
            .upsert_profile(call(
                &token(&self.auth, "profiles", &[Scope::ProfilesWrite]),
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

    pub fn requests(&self) -> DataSubjectRequestsClient<Channel> {
        self.consent.client(DataSubjectRequestsClient::new)
    }

    /// The token of the web form that takes requests and relays codes.
    pub fn submitter(&self) -> String {
        token(&self.auth, "consent", &[Scope::DsrSubmit])
    }

    pub fn operator(&self) -> String {
        token(
            &self.auth,
            "consent",
            &[Scope::DsrManage, Scope::ConsentRead],
        )
    }

    pub async fn submit(&self, subject: &str, days_ago: i64) -> pb::DataSubjectRequest {
        let received = chrono::Utc::now() - chrono::Duration::days(days_ago);
        self.requests()
            .submit_request(call(
                &self.submitter(),
                pb::SubmitRequestRequest {
                    subject: Some(common::SubjectRef {
                        subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
                    }),
                    r#type: pb::RequestType::Access.into(),
                    channel: pb::RequestChannel::Web.into(),
                    received_at: Some(prost_types::Timestamp {
                        seconds: received.timestamp(),
                        nanos: 0,
                    }),
                    corrections: vec![],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .request
            .unwrap()
    }

    pub async fn confirm(
        &self,
        request: &str,
        code: &str,
    ) -> Result<pb::DataSubjectRequest, tonic::Status> {
        self.requests()
            .confirm_requester(call(
                &self.submitter(),
                pb::ConfirmRequesterRequest {
                    request_id: request.to_owned(),
                    code: code.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().request.unwrap())
    }

    pub async fn resend(&self, request: &str) -> Result<pb::DataSubjectRequest, tonic::Status> {
        self.requests()
            .resend_verification_code(call(
                &self.submitter(),
                pb::ResendVerificationCodeRequest {
                    request_id: request.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().request.unwrap())
    }

    pub async fn get(&self, request: &str) -> pb::DataSubjectRequest {
        self.requests()
            .get_request(call(
                &self.operator(),
                pb::GetRequestRequest {
                    request_id: request.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .request
            .unwrap()
    }

    pub async fn message(&self, id: &str) -> outbound::Message {
        self.outbound
            .client(MessagesClient::new)
            .get_message(call(
                &token(&self.auth, "outbound", &[Scope::OutboundSend]),
                outbound::GetMessageRequest {
                    message_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap()
    }

    /// The request's row as consent stores it, as text.
    pub fn stored_row(&self, request: &str) -> String {
        self.query(
            "SELECT r::text AS value FROM consent.requests r WHERE id = $1::uuid",
            request,
        )
    }

    /// Whether consent holds a code's MAC for the request.
    pub fn holds_code(&self, request: &str) -> bool {
        self.query(
            "SELECT (verification_code_mac IS NOT NULL)::text AS value FROM consent.requests \
             WHERE id = $1::uuid",
            request,
        ) == "true"
    }

    fn query(&self, sql: &str, request: &str) -> String {
        use diesel::{Connection as _, RunQueryDsl as _};
        #[derive(diesel::QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let mut conn = diesel::PgConnection::establish(self.database.admin_url().expose()).unwrap();
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(request)
            .get_result::<Value>(&mut conn)
            .unwrap()
            .value
    }

    /// Waits for the `count`th mail; its recipients and the code in its text.
    pub async fn code(&self, count: usize) -> (Vec<String>, String) {
        let mails = self.smtp.wait_for(count, Duration::from_secs(20)).await;
        assert!(mails.len() >= count, "{} mails, not {count}", mails.len());
        let text = body(&mails[count - 1]);
        let code = six_digits(&text).unwrap_or_else(|| panic!("no code in {text:?}"));
        (mails[count - 1].rcpt_to.clone(), code)
    }
}

/// What the recipient reads: outbound sends email as HTML.
pub fn body(mail: &ecrm_testkit::ReceivedMail) -> String {
    mail.html().unwrap_or_else(|| mail.text())
}

fn token(auth: &TestAuth, audience: &str, scopes: &[Scope]) -> String {
    auth.token(&TokenSpec::internal(
        audience,
        scopes.iter().copied().collect::<Scopes>(),
    ))
}

/// The first run of exactly six digits in `text`.
pub fn six_digits(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_owned)
}

/// A channel to a port nothing listens on.
async fn closed_port() -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy()
}
