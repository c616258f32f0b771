//! A campaign to `CAMPAIGN_RECIPIENTS` (default 100,000) consenting customers, every message
//! through the gate (consent asked, addresses fetched from profiles, suppressions, one-click
//! unsubscribes, frequency cap) to a local SMTP server (aiosmtpd, counting only). Profiles and
//! consent run in this process; the outbound workers run in a child process of their own, so
//! its peak RSS is the service's alone. Prints messages per second and that peak.
//! Run: `cargo bench -p ecrm-outbound --bench campaign`.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a benchmark fails by panicking"
)]
#![expect(
    clippy::print_stdout,
    reason = "the figures are the benchmark's output"
)]

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecrm_auth::{Scope, Scopes, TokenSource};
use ecrm_crypto::{MasterKey, Secret};
use ecrm_outbound::{Outbound, OutboundConfig, Peers, SERVICE};
use ecrm_platform::db::PoolOptions;
use ecrm_platform::{DatabaseUrl, Db, ServiceContext};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::campaigns_client::CampaignsClient;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{SmtpSink, TestAuth, TestDatabase, TokenSpec, start_server};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::Request;

const CHILD: &str = "ECRM_BENCH_OUTBOUND_CHILD";
const PURPOSE: &str = "newsletter";
/// Calls in flight while setting up customers.
const SETUP_CONCURRENCY: usize = 32;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Tokens minted by the parent, handed to the child: it calls consent and profiles with them.
struct FixedTokens(HashMap<String, String>);

impl TokenSource for FixedTokens {
    fn token<'a>(
        &'a self,
        audience: &'a str,
        _scopes: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<String, tonic::Status>> + Send + 'a>> {
        let token = self
            .0
            .get(audience)
            .cloned()
            .ok_or_else(|| tonic::Status::unauthenticated(format!("no token for {audience}")));
        Box::pin(async move { token })
    }
}

/// What the child reads from its environment.
fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn outbound_config(master_key: &str, smtp_url: &str) -> OutboundConfig {
    let mut config = OutboundConfig::new(Arc::new(master_key.parse::<MasterKey>().unwrap()));
    config.quiet_hours = "none".to_owned();
    config.delivery.smtp_url = Some(Secret::new(smtp_url.to_owned()));
    config.delivery.email_from = Some("Shop <news@shop.example>".to_owned());
    config.delivery.smtp_pool_size = u32::try_from(setting("BENCH_SMTP_POOL", 32)).unwrap();
    config.workers = usize::try_from(setting("BENCH_WORKERS", 4)).unwrap();
    config.send_concurrency = usize::try_from(setting("BENCH_CONCURRENCY", 64)).unwrap();
    config.idle = Duration::from_millis(50);
    config
}

/// The child: outbound's workers only, until killed.
fn child() {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url: DatabaseUrl = env("BENCH_OUTBOUND_DB").parse().unwrap();
        let db = Db::connect(
            &url,
            SERVICE.schema,
            PoolOptions {
                max_size: u32::try_from(setting("BENCH_POOL", 40)).unwrap(),
                ..PoolOptions::default()
            },
        )
        .await
        .unwrap();
        let tokens: Arc<dyn TokenSource> = Arc::new(FixedTokens(HashMap::from([
            ("consent".to_owned(), env("BENCH_CONSENT_TOKEN")),
            ("profiles".to_owned(), env("BENCH_PROFILES_TOKEN")),
        ])));
        let endpoint = |name: &str| {
            tonic::transport::Endpoint::from_shared(env(name))
                .unwrap()
                .connect_lazy()
        };
        let auth = TestAuth::new();
        let shutdown = CancellationToken::new();
        let outbound = Outbound::connected(
            &ServiceContext::new(db, shutdown.clone()),
            &outbound_config(&env("BENCH_MASTER_KEY"), &env("BENCH_SMTP_URL")),
            auth.verifier("outbound").await,
            Peers::connect(
                Some(endpoint("BENCH_CONSENT_URL")),
                Some(endpoint("BENCH_PROFILES_URL")),
                None,
                tokens,
            ),
        )
        .unwrap();
        outbound.start();
        shutdown.cancelled().await;
    });
}

/// CPU time `pid` has used (user and system), in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // The kernel's USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// Peak resident set of `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    // cargo bench passes --bench; a plain `cargo test` of benches runs nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let recipients = usize::try_from(setting("CAMPAIGN_RECIPIENTS", 100_000)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(recipients));
}

async fn run(recipients: usize) {
    let database =
        TestDatabase::new(&[&SERVICE, &ecrm_profiles::SERVICE, &ecrm_consent::SERVICE]).await;
    let auth = Arc::new(TestAuth::new());
    let shutdown = CancellationToken::new();
    let context = |db: Db| ServiceContext::new(db, shutdown.clone());
    let big_pool = |def| {
        let url = database.service_url(def);
        async move {
            Db::connect(
                &url,
                def.schema,
                PoolOptions {
                    max_size: 16,
                    ..PoolOptions::default()
                },
            )
            .await
            .unwrap()
        }
    };
    let profiles = ecrm_profiles::Profiles::new(
        context(big_pool(&ecrm_profiles::SERVICE).await),
        ecrm_profiles::ProfilesConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
        auth.verifier("profiles").await,
    )
    .unwrap();
    let profiles = start_server(profiles.routes()).await.unwrap();
    let consent = ecrm_consent::Consent::new(
        &context(big_pool(&ecrm_consent::SERVICE).await),
        &ecrm_consent::ConsentConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
        auth.verifier("consent").await,
    )
    .unwrap();
    let consent = start_server(consent.routes()).await.unwrap();
    let smtp = SmtpSink::start_counting().await.unwrap();
    let (_, encoded_key) = MasterKey::generate().unwrap();
    // This process's outbound serves the API; it runs no workers.
    let outbound = Outbound::connected(
        &context(database.db(&SERVICE).await.unwrap()),
        &outbound_config(&encoded_key, &smtp.url()),
        auth.verifier("outbound").await,
        Peers::connect(
            Some(consent.channel()),
            Some(profiles.channel()),
            None,
            auth.clone(),
        ),
    )
    .unwrap();
    let outbound_server = start_server(outbound.routes()).await.unwrap();

    let token = |audience: &str, scopes: &[Scope]| {
        auth.token(&TokenSpec {
            expires_in: 6 * 3600,
            ..TokenSpec::internal(audience, scopes.iter().copied().collect::<Scopes>())
        })
    };
    let consent_token = token("consent", &[Scope::ConsentRead, Scope::ConsentWrite]);
    let profiles_token = token("profiles", &[Scope::ProfilesRead, Scope::ProfilesWrite]);
    let outbound_token = token("outbound", &[Scope::OutboundSend, Scope::OutboundManage]);

    let mut purposes = consent.client(PurposesClient::new);
    purposes
        .define_purpose(call(
            &consent_token,
            consent::DefinePurposeRequest {
                purpose: Some(consent::Purpose {
                    key: PURPOSE.to_owned(),
                    description: "offers by email".to_owned(),
                    lawful_basis: common::LawfulBasis::Consent.into(),
                    channels: vec![consent::Channel::Email.into()],
                    data_categories: vec!["email".to_owned()],
                    direct_marketing: true,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let notice = purposes
        .publish_notice(call(
            &consent_token,
            consent::PublishNoticeRequest {
                purpose_key: PURPOSE.to_owned(),
                text: "Our offers, once a week.".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version;

    println!("setting up {recipients} consenting customers...");
    let started = Instant::now();
    let profiles_client = profiles.client(ProfilesClient::new);
    let consents_client = consent.client(ConsentsClient::new);
    let subjects: Vec<String> = futures::stream::iter(0..recipients)
        .map(|i| {
            let (mut profiles_client, mut consents_client) =
                (profiles_client.clone(), consents_client.clone());
            let (profiles_token, consent_token, notice) =
                (&profiles_token, &consent_token, &notice);
            async move {
                let subject = profiles_client
                    .upsert_profile(call(
                        profiles_token,
                        profiles::UpsertProfileRequest {
                            identifiers: vec![profiles::NewIdentifier {
                                identifier: Some(common::Identifier {
                                    kind: common::IdentifierKind::Email.into(),
                                    value: format!("customer{i}@example.com"),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }],
                            source: "bench".to_owned(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .profile
                    .unwrap()
                    .subject_id;
                consents_client
                    .record_consent(call(
                        consent_token,
                        consent::RecordConsentRequest {
                            subject_id: subject.clone(),
                            purpose_key: PURPOSE.to_owned(),
                            decision: consent::Decision::Granted.into(),
                            channel: consent::Channel::Email.into(),
                            collection_point: "checkout".to_owned(),
                            notice_version: notice.clone(),
                            evidence: None,
                            expires_at: None,
                        },
                    ))
                    .await
                    .unwrap();
                subject
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    println!("  done in {:.0} s", started.elapsed().as_secs_f64());

    outbound_server
        .client(TemplatesClient::new)
        .upsert_template(call(
            &outbound_token,
            pb::UpsertTemplateRequest {
                template: Some(pb::Template {
                    key: "weekly".to_owned(),
                    channel: pb::Channel::Email.into(),
                    locale: "en".to_owned(),
                    subject: "This week's offers".to_owned(),
                    body: "<p>Hello,</p><p>{{ offer }}</p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>".to_owned(),
                    variables: vec!["offer".to_owned()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let mut campaigns = outbound_server.client(CampaignsClient::new);
    let campaign = campaigns
        .create_campaign(call(
            &outbound_token,
            pb::CreateCampaignRequest {
                campaign: Some(pb::Campaign {
                    name: "weekly offers".to_owned(),
                    explicit_list: true,
                    channel: pb::Channel::Email.into(),
                    template_key: "weekly".to_owned(),
                    variables_json: r#"{"offer": "Tents -20%"}"#.to_owned(),
                    purpose_key: PURPOSE.to_owned(),
                    ..Default::default()
                }),
                subject_ids: Vec::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    for chunk in subjects.chunks(10_000) {
        campaigns
            .add_campaign_recipients(call(
                &outbound_token,
                pb::AddCampaignRecipientsRequest {
                    campaign_id: campaign.campaign_id.clone(),
                    subject_ids: chunk.to_vec(),
                },
            ))
            .await
            .unwrap();
    }
    let started = Instant::now();
    campaigns
        .start_campaign(call(
            &outbound_token,
            pb::StartCampaignRequest {
                campaign_id: campaign.campaign_id.clone(),
            },
        ))
        .await
        .unwrap();
    println!(
        "campaign started: {recipients} messages queued in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .env("BENCH_OUTBOUND_DB", database.service_url(&SERVICE).expose())
        .env("BENCH_CONSENT_URL", format!("http://{}", consent.addr()))
        .env("BENCH_PROFILES_URL", format!("http://{}", profiles.addr()))
        .env(
            "BENCH_CONSENT_TOKEN",
            token("consent", &[Scope::ConsentRead, Scope::ConsentWrite]),
        )
        .env(
            "BENCH_PROFILES_TOKEN",
            token("profiles", &[Scope::ProfilesRead]),
        )
        .env("BENCH_MASTER_KEY", &encoded_key)
        .env("BENCH_SMTP_URL", smtp.url())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let here_before = cpu_seconds("self");
    let mut peak = 0.0_f64;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(peak_rss_mib(pid));
        let sent = smtp.count();
        if sent >= recipients {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {sent} of {recipients} mails arrived in 30 minutes"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    peak = peak.max(peak_rss_mib(pid));
    let outbound_cpu = cpu_seconds(&pid.to_string());
    let here_cpu = cpu_seconds("self") - here_before;
    child.kill().unwrap();
    child.wait().unwrap();
    let stats = campaigns
        .get_campaign_stats(call(
            &outbound_token,
            pb::GetCampaignStatsRequest {
                campaign_id: campaign.campaign_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    println!(
        "campaign of {recipients}: {:.0} messages/s ({elapsed:.1} s), outbound peak RSS {peak:.1} MiB, CPU: outbound {outbound_cpu:.1} s, profiles and consent {here_cpu:.1} s; stats: sent {}, blocked {}, failed {}, deferred {}",
        recipients as f64 / elapsed,
        stats.sent,
        stats.blocked,
        stats.failed,
        stats.deferred,
    );
    shutdown.cancel();
}
