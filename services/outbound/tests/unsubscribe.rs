//! One-click unsubscribe (RFC 8058) through the running services: outbound's HTTP endpoint
//! beside a real consent service, each on its own database, called with a real HTTP client.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use ecrm_auth::{Scope, Scopes};
use ecrm_crypto::MasterKey;
use ecrm_outbound::consent_client::{ConsentClient, ONE_CLICK_COLLECTION_POINT};
use ecrm_outbound::unsubscribe::store::{self, UnsubscribeRow};
use ecrm_outbound::unsubscribe::{ForwardRetry, UnsubscribeLinks, pending_withdrawals};
use ecrm_outbound::{Channel, Outbound, OutboundConfig, OutboundError, Peers, SERVICE};
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::config::ShutdownConfig;
use ecrm_platform::{Db, RunningServer, ServiceContext};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::call;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use uuid::Uuid;

/// A purpose resting on consent, by email.
const NEWSLETTER: &str = "newsletter";
/// A purpose resting on legitimate interest: consent records no decision for it.
const PARTNER_OFFERS: &str = "partner_offers";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Thunderbird/128.0";

/// Retries a test can wait for.
fn quick_retry() -> ForwardRetry {
    ForwardRetry {
        poll: Duration::from_millis(50),
        first: Duration::from_millis(50),
        max: Duration::from_millis(200),
    }
}

/// An address nothing listens on.
fn closed_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// A consent service on the suite's database, its own process in production.
async fn consent_service(
    database: &TestDatabase,
    auth: &TestAuth,
    shutdown: &CancellationToken,
) -> ecrm_consent::Consent {
    ecrm_consent::Consent::new(
        &ServiceContext::new(
            database.db(&ecrm_consent::SERVICE).await.unwrap(),
            shutdown.clone(),
        ),
        &ecrm_consent::ConsentConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
        auth.verifier("consent").await,
    )
    .unwrap()
}

struct Suite {
    database: TestDatabase,
    auth: Arc<TestAuth>,
    consent: TestServer,
    outbound: Outbound,
    /// Outbound's database, as the send path reads it.
    db: Db,
    /// Where outbound serves HTTP.
    http: SocketAddr,
    shutdown: CancellationToken,
    _stop: tokio_util::sync::DropGuard,
}

impl Suite {
    /// Consent with the purposes defined, and outbound calling it.
    async fn start() -> Self {
        Self::start_calling(None).await
    }

    /// Outbound calling consent at `consent_addr` instead of where it runs, when given.
    async fn start_calling(consent_addr: Option<SocketAddr>) -> Self {
        let database = TestDatabase::new(&[&SERVICE, &ecrm_consent::SERVICE]).await;
        let auth = Arc::new(TestAuth::new());
        let shutdown = CancellationToken::new();
        let consent = start_server(consent_service(&database, &auth, &shutdown).await.routes())
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let mut config = OutboundConfig::new(Arc::new(MasterKey::generate().unwrap().0));
        config.unsubscribe.public_url = format!("http://{http}");
        config.unsubscribe.retry = quick_retry();
        let channel = match consent_addr {
            Some(addr) => Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_timeout(Duration::from_secs(1))
                .connect_lazy(),
            None => consent.channel(),
        };
        let db = database.db(&SERVICE).await.unwrap();
        let outbound = Outbound::connected(
            &ServiceContext::new(db.clone(), shutdown.clone()),
            &config,
            auth.verifier("outbound").await,
            Peers::connect(Some(channel), None, None, auth.clone()),
        )
        .unwrap();
        outbound.start();
        tokio::spawn(outbound.serve_http(listener));
        let suite = Self {
            database,
            auth,
            consent,
            outbound,
            db,
            http,
            shutdown: shutdown.clone(),
            _stop: shutdown.drop_guard(),
        };
        suite.define_purposes().await;
        suite
    }

    fn consent_token(&self) -> String {
        self.auth.token(&TokenSpec::internal(
            "consent",
            [Scope::ConsentRead, Scope::ConsentWrite]
                .into_iter()
                .collect::<Scopes>(),
        ))
    }

    async fn define_purposes(&self) {
        let mut purposes = self.consent.client(PurposesClient::new);
        for (key, basis) in [
            (NEWSLETTER, common::LawfulBasis::Consent),
            (PARTNER_OFFERS, common::LawfulBasis::LegitimateInterest),
        ] {
            purposes
                .define_purpose(call(
                    &self.consent_token(),
                    consent::DefinePurposeRequest {
                        purpose: Some(consent::Purpose {
                            key: key.to_owned(),
                            description: "offers by email".to_owned(),
                            lawful_basis: basis.into(),
                            channels: vec![consent::Channel::Email.into()],
                            data_categories: vec!["email".to_owned()],
                            direct_marketing: true,
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .unwrap();
        }
    }

    /// A subject who subscribed to the newsletter, through consent's API.
    async fn subscriber(&self) -> Uuid {
        let notice = self
            .consent
            .client(PurposesClient::new)
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
        let subject = Uuid::now_v7();
        self.consent
            .client(ConsentsClient::new)
            .record_consent(call(
                &self.consent_token(),
                consent::RecordConsentRequest {
                    subject_id: subject.to_string(),
                    purpose_key: NEWSLETTER.to_owned(),
                    decision: consent::Decision::Granted.into(),
                    channel: consent::Channel::Email.into(),
                    collection_point: "checkout".to_owned(),
                    notice_version: notice,
                    evidence: None,
                    expires_at: None,
                },
            ))
            .await
            .unwrap();
        assert_eq!(
            self.check(NEWSLETTER, subject).await,
            consent::Reason::Granted
        );
        subject
    }

    /// The path of `subject`'s unsubscribe link from `purpose` by email.
    fn link(&self, subject: Uuid, purpose: &str) -> String {
        let url = self
            .outbound
            .unsubscribe_links()
            .url(subject, Channel::Email, purpose);
        url.strip_prefix(&format!("http://{}", self.http))
            .unwrap()
            .to_owned()
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, HeaderMap, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.http))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(body.into()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    /// What a mail client's one-click POST sends (RFC 8058).
    async fn one_click(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        self.request(Method::POST, path, "List-Unsubscribe=One-Click")
            .await
    }

    async fn check(&self, purpose: &str, subject: Uuid) -> consent::Reason {
        let decisions = self
            .consent
            .client(ConsentsClient::new)
            .check_consent(call(
                &self.consent_token(),
                consent::CheckConsentRequest {
                    purpose_key: purpose.to_owned(),
                    channel: consent::Channel::Email.into(),
                    subject_ids: vec![subject.to_string()],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .decisions;
        decisions[0].reason()
    }

    async fn history(&self, subject: Uuid) -> Vec<consent::LedgerEntry> {
        self.consent
            .client(ConsentsClient::new)
            .list_consent_history(call(
                &self.consent_token(),
                consent::ListConsentHistoryRequest {
                    subject_id: subject.to_string(),
                    page: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    async fn rows(&self, subject: Uuid) -> Vec<UnsubscribeRow> {
        self.db
            .run(move |conn| Ok::<_, OutboundError>(store::list_by_subject(conn, subject)?))
            .await
            .unwrap()
    }

    async fn pending(&self, purpose: &str, subjects: &[Uuid]) -> HashSet<Uuid> {
        let (purpose, subjects) = (purpose.to_owned(), subjects.to_vec());
        self.db
            .run(move |conn| {
                Ok::<_, OutboundError>(pending_withdrawals(conn, &purpose, &subjects)?)
            })
            .await
            .unwrap()
    }

    /// Waits until `done` holds of the subject's unsubscribes.
    async fn rows_until(
        &self,
        subject: Uuid,
        done: impl Fn(&[UnsubscribeRow]) -> bool,
    ) -> Vec<UnsubscribeRow> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = self.rows(subject).await;
            if done(&rows) {
                return rows;
            }
            assert!(Instant::now() < deadline, "unsubscribes still {rows:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn the_link_opens_a_page_with_a_button_and_unsubscribes_nothing() {
    let suite = Suite::start().await;
    let subject = suite.subscriber().await;
    let link = suite.link(subject, NEWSLETTER);

    let (status, headers, page) = suite.request(Method::GET, &link, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(page.contains("<button type=\"submit\">Unsubscribe</button>"));
    assert!(page.contains("<strong>newsletter</strong>"));
    assert!(page.contains("by email"));
    // Self-contained: nothing to run, nothing fetched elsewhere.
    for absent in ["<script", "src=", "href=", "http"] {
        assert!(!page.contains(absent), "{absent} in {page}");
    }

    assert!(suite.rows(subject).await.is_empty());
    assert!(suite.pending(NEWSLETTER, &[subject]).await.is_empty());
    assert_eq!(suite.history(subject).await.len(), 1);
    assert_eq!(
        suite.check(NEWSLETTER, subject).await,
        consent::Reason::Granted
    );
}

#[tokio::test]
async fn one_click_withdraws_the_consent_at_once_and_clicking_again_is_harmless() {
    let suite = Suite::start().await;
    let subject = suite.subscriber().await;
    let other = suite.subscriber().await;
    let link = suite.link(subject, NEWSLETTER);

    let (status, headers, page) = suite.one_click(&link).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(headers.get(header::LOCATION).is_none());
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(page.contains("You will no longer receive messages by email for"));
    assert!(page.contains("<strong>newsletter</strong>"));

    // Recorded at consent before the page was answered.
    assert_eq!(
        suite.check(NEWSLETTER, subject).await,
        consent::Reason::Withdrawn
    );
    assert_eq!(
        suite.check(NEWSLETTER, other).await,
        consent::Reason::Granted
    );
    let history = suite.history(subject).await;
    assert_eq!(history.len(), 2);
    let withdrawal = &history[1];
    assert_eq!(withdrawal.decision(), consent::Decision::Withdrawn);
    assert_eq!(withdrawal.purpose_key, NEWSLETTER);
    assert_eq!(withdrawal.channel(), consent::Channel::Email);
    assert_eq!(withdrawal.collection_point, ONE_CLICK_COLLECTION_POINT);
    assert_eq!(withdrawal.collection_point, "one-click-unsubscribe");
    let evidence = withdrawal.evidence.as_ref().unwrap();
    assert_eq!(evidence.ip_hash, sha256_hex("127.0.0.1"));
    assert_eq!(evidence.user_agent, USER_AGENT);

    let rows = suite.rows(subject).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        evidence.form_id,
        format!("outbound.unsubscribes:{}", row.unsubscribe_id)
    );
    assert!(row.forwarded_at.is_some());
    assert_eq!((row.attempts, row.last_error.as_deref()), (1, None));
    assert_eq!(
        row.ip_hash.as_deref(),
        Some(sha256_hex("127.0.0.1").as_str())
    );
    assert_eq!(row.user_agent.as_deref(), Some(USER_AGENT));
    // Forwarded: consent's own check now blocks the subject.
    assert!(
        suite
            .pending(NEWSLETTER, &[subject, other])
            .await
            .is_empty()
    );

    // Again (a second mail client, a double click): 200 too, and a second withdrawal in the
    // ledger, which changes nothing in force.
    let (status, headers, _) = suite.one_click(&link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::LOCATION).is_none());
    assert_eq!(
        suite.check(NEWSLETTER, subject).await,
        consent::Reason::Withdrawn
    );
    let history = suite.history(subject).await;
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].decision(), consent::Decision::Withdrawn);
    assert_eq!(suite.rows(subject).await.len(), 2);

    // Any form body is taken, the page's own form included.
    let third = suite.subscriber().await;
    let (status, _, _) = suite
        .request(Method::POST, &suite.link(third, NEWSLETTER), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        suite.check(NEWSLETTER, third).await,
        consent::Reason::Withdrawn
    );
}

#[tokio::test]
async fn a_tampered_or_unknown_link_is_not_found_and_records_nothing() {
    let suite = Suite::start().await;
    let subject = suite.subscriber().await;
    let link = suite.link(subject, NEWSLETTER);
    let token = link.strip_prefix("/u/").unwrap();
    let mut tampered = token.as_bytes().to_vec();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_key = UnsubscribeLinks::new(
        MasterKey::generate()
            .unwrap()
            .0
            .blind_index_key("unsubscribe")
            .unwrap(),
        "http://127.0.0.1",
    )
    .unwrap()
    .token(subject, Channel::Email, NEWSLETTER);

    for path in [
        format!("/u/{tampered}"),
        format!("/u/{}", &token[..token.len() - 2]),
        format!("/u/{other_key}"),
        "/u/not-a-token".to_owned(),
        "/u/%F0%9F%92%A9".to_owned(),
        "/u/".to_owned(),
        format!("/unsubscribe/{token}"),
        "/".to_owned(),
    ] {
        for method in [Method::GET, Method::POST] {
            let (status, headers, page) = suite.request(method.clone(), &path, "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert!(page.contains("<h1>"), "{page}");
        }
    }
    assert!(suite.rows(subject).await.is_empty());
    assert_eq!(suite.history(subject).await.len(), 1);
    assert_eq!(
        suite.check(NEWSLETTER, subject).await,
        consent::Reason::Granted
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_records_nothing() {
    let suite = Suite::start().await;
    let subject = suite.subscriber().await;
    let (status, _, _) = suite
        .request(
            Method::POST,
            &suite.link(subject, NEWSLETTER),
            "x".repeat(64 * 1024),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(suite.rows(subject).await.is_empty());
    assert_eq!(
        suite.check(NEWSLETTER, subject).await,
        consent::Reason::Granted
    );
}

#[tokio::test]
async fn an_unsubscribe_blocks_while_consent_is_unreachable_and_is_forwarded_once_it_is_back() {
    let consent_addr = closed_port();
    let suite = Suite::start_calling(Some(consent_addr)).await;
    let subject = suite.subscriber().await;
    let other = suite.subscriber().await;

    let (status, headers, page) = suite.one_click(&suite.link(subject, NEWSLETTER)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(headers.get(header::LOCATION).is_none());
    assert!(page.contains("You will no longer receive messages"));

    // Consent does not know yet: the row kept here is what blocks the subject.
    assert_eq!(
        suite.check(NEWSLETTER, subject).await,
        consent::Reason::Granted
    );
    assert_eq!(
        suite.pending(NEWSLETTER, &[subject, other]).await,
        HashSet::from([subject])
    );
    assert!(
        suite
            .pending("another_purpose", &[subject])
            .await
            .is_empty()
    );
    // The forwarder keeps trying, waiting longer each time.
    let rows = suite
        .rows_until(subject, |rows| {
            rows.first().is_some_and(|r| r.attempts >= 3)
        })
        .await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].forwarded_at.is_none() && rows[0].refused_at.is_none());
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("Unavailable")
    );
    // Clicking again while it waits adds nothing.
    let (status, _, _) = suite.one_click(&suite.link(subject, NEWSLETTER)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(suite.rows(subject).await.len(), 1);

    // Consent comes back where outbound calls it (a second instance on the same ledger).
    let listener = TcpListener::bind(consent_addr).await.unwrap();
    let back = RunningServer::start(
        listener,
        consent_service(&suite.database, &suite.auth, &suite.shutdown)
            .await
            .routes(),
        ShutdownConfig {
            grace: Duration::ZERO,
            drain_timeout: Duration::from_secs(5),
        },
        suite.shutdown.child_token(),
    )
    .await
    .unwrap();

    let rows = suite
        .rows_until(subject, |rows| rows[0].forwarded_at.is_some())
        .await;
    assert_eq!(rows[0].last_error, None);
    assert!(
        suite
            .pending(NEWSLETTER, &[subject, other])
            .await
            .is_empty()
    );
    assert_eq!(
        suite.check(NEWSLETTER, subject).await,
        consent::Reason::Withdrawn
    );
    assert_eq!(
        suite.check(NEWSLETTER, other).await,
        consent::Reason::Granted
    );
    let history = suite.history(subject).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].decision(), consent::Decision::Withdrawn);
    assert_eq!(history[1].collection_point, "one-click-unsubscribe");
    back.shutdown();
}

#[tokio::test]
async fn a_withdrawal_consent_refuses_keeps_blocking_and_is_not_retried() {
    let suite = Suite::start().await;
    let subject = Uuid::now_v7();

    let (status, _, _) = suite.one_click(&suite.link(subject, PARTNER_OFFERS)).await;
    assert_eq!(status, StatusCode::OK);
    let rows = suite.rows(subject).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].refused_at.is_some() && rows[0].forwarded_at.is_none());
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("refused: InvalidArgument")
    );
    // Many retry periods later, still one attempt.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(suite.rows(subject).await[0].attempts, 1);

    // Consent allows the purpose on its lawful basis whatever the subject clicked: only the
    // row kept here stops the messages.
    assert_eq!(
        suite.check(PARTNER_OFFERS, subject).await,
        consent::Reason::OtherLawfulBasis
    );
    assert!(suite.history(subject).await.is_empty());
    assert_eq!(
        suite.pending(PARTNER_OFFERS, &[subject]).await,
        HashSet::from([subject])
    );
}

#[tokio::test]
async fn the_consent_client_checks_any_number_of_subjects_and_reads_purposes() {
    let suite = Suite::start().await;
    let client = ConsentClient::new(suite.consent.channel(), suite.auth.clone());
    let subscriber = suite.subscriber().await;
    let mut subjects: Vec<Uuid> = (0..10_000).map(|_| Uuid::now_v7()).collect();
    subjects.push(subscriber);

    let verdicts = client
        .check(NEWSLETTER, Channel::Email, &subjects)
        .await
        .unwrap();
    assert_eq!(verdicts.len(), 10_001);
    assert!(verdicts[&subscriber].allowed);
    assert_eq!(verdicts[&subscriber].reason, consent::Reason::Granted);
    assert!(!verdicts[&subjects[0]].allowed);
    assert_eq!(verdicts[&subjects[0]].reason, consent::Reason::NeverAsked);
    assert!(
        client
            .check(NEWSLETTER, Channel::Email, &[])
            .await
            .unwrap()
            .is_empty()
    );
    // Not a channel of the purpose: no verdict, and consent's answer says why.
    let refused = client
        .check(NEWSLETTER, Channel::Sms, &[subscriber])
        .await
        .unwrap_err();
    assert_eq!(refused.status.code(), tonic::Code::InvalidArgument);

    let purpose = client.purpose(NEWSLETTER).await.unwrap().unwrap();
    assert_eq!(purpose.lawful_basis(), common::LawfulBasis::Consent);
    assert_eq!(purpose.channels, vec![i32::from(consent::Channel::Email)]);
    assert!(purpose.direct_marketing);
    assert_eq!(client.purpose("no_such_purpose").await.unwrap(), None);

    // Unreachable.
    let nowhere = ConsentClient::new(
        Endpoint::from_shared(format!("http://{}", closed_port()))
            .unwrap()
            .connect_lazy(),
        suite.auth.clone(),
    );
    assert!(nowhere.purpose(NEWSLETTER).await.is_err());
    assert!(
        nowhere
            .check(NEWSLETTER, Channel::Email, &[subscriber])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_service_serves_unsubscribes_on_its_http_address_and_names_the_flag_when_it_cannot() {
    let database = TestDatabase::new(&[&SERVICE]).await;
    let auth = AuthConfig::new(&format!("http://{}", closed_port()), "outbound", "secret");
    let config = |addr: SocketAddr| {
        let mut config = OutboundConfig::new(Arc::new(MasterKey::generate().unwrap().0));
        config.unsubscribe.http_addr = addr;
        config
    };

    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let error = ecrm_outbound::build(
        ServiceContext::new(database.db(&SERVICE).await.unwrap(), shutdown.clone()),
        config(taken.local_addr().unwrap()),
        auth.clone(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("--http-addr"), "{error}");
    shutdown.cancel();

    let addr = closed_port();
    let shutdown = CancellationToken::new();
    let _routes = ecrm_outbound::build(
        ServiceContext::new(database.db(&SERVICE).await.unwrap(), shutdown.clone()),
        config(addr),
        auth,
    )
    .await
    .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |path: &str| {
        client.request(
            Request::builder()
                .uri(format!("http://{addr}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    assert_eq!(
        get("/u/not-a-token").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    shutdown.cancel();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still serving after the shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
