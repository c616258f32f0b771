//! Erasure of one subject holding 10,000 interactions, end to end: submitted, verified and
//! approved at consent, carried out at profiles and at consent itself (erase, then the
//! follow-up export), until the request is completed. Every call goes through gRPC with real
//! tokens; profiles, consent and PostgreSQL share this machine.
//! Run: `cargo bench -p ecrm-consent --bench erasure` (`ERASURE_RUNS`, default 3).
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up stops with the reason"
)]
#![expect(
    clippy::print_stdout,
    reason = "the figures are the benchmark's output"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ecrm_auth::Scope;
use ecrm_consent::{Consent, ConsentConfig, PersonalDataTarget, SERVICE};
use ecrm_crypto::MasterKey;
use ecrm_platform::config::ShutdownConfig;
use ecrm_platform::db::PoolOptions;
use ecrm_platform::{Db, RunningServer, ServiceContext};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{TestAuth, TestDatabase, TokenSpec, start_server};
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;

const INTERACTIONS: usize = 10_000;

fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn pool(database: &TestDatabase, def: &ecrm_platform::ServiceDef) -> Db {
    Db::connect(
        &database.service_url(def),
        def.schema,
        PoolOptions::default(),
    )
    .await
    .unwrap()
}

fn page_view(n: usize, subject: &str) -> profiles::Interaction {
    profiles::Interaction {
        event_id: format!("view-{subject}-{n}"),
        subject: Some(common::SubjectRef {
            subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
        }),
        channel: profiles::Channel::Web.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 3600,
            nanos: 0,
        }),
        details: Some(profiles::interaction::Details::PageView(
            profiles::PageView {
                url: format!("https://shop.example/p/{n}"),
                ..Default::default()
            },
        )),
    }
}

fn main() {
    let runs: usize = std::env::var("ERASURE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(ecrm_platform::db::BLOCKING_THREAD_BUDGET as usize)
        .build()
        .unwrap();
    runtime.block_on(async {
        let database = TestDatabase::new(&[&SERVICE, &ecrm_profiles::SERVICE]).await;
        let auth = Arc::new(TestAuth::new());
        let shutdown = CancellationToken::new();
        let profiles = ecrm_profiles::Profiles::new(
            ServiceContext::new(
                pool(&database, &ecrm_profiles::SERVICE).await,
                shutdown.clone(),
            ),
            ecrm_profiles::ProfilesConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("profiles").await,
        )
        .unwrap();
        let profiles = start_server(profiles.routes()).await.unwrap();
        // Consent carries requests out at profiles and at itself: its address is taken first.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let consent_url = format!("http://{}", listener.local_addr().unwrap());
        let consent = Consent::new(
            &ServiceContext::new(pool(&database, &SERVICE).await, shutdown.clone()),
            &ConsentConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("consent").await,
        )
        .unwrap()
        .with_personal_data(
            vec![
                PersonalDataTarget {
                    name: "profiles".to_owned(),
                    channel: profiles.channel(),
                },
                PersonalDataTarget {
                    name: "consent".to_owned(),
                    channel: Channel::from_shared(consent_url.clone())
                        .unwrap()
                        .connect_lazy(),
                },
            ],
            auth.clone(),
        );
        let _consent = RunningServer::start(
            listener,
            consent.routes(),
            ShutdownConfig {
                grace: Duration::ZERO,
                drain_timeout: Duration::from_secs(5),
            },
            shutdown.clone(),
        )
        .await
        .unwrap();
        let consent_channel = Channel::from_shared(consent_url).unwrap().connect_lazy();
        let writer = auth.token(&TokenSpec::internal(
            "profiles",
            [Scope::ProfilesWrite, Scope::EventsWrite]
                .into_iter()
                .collect(),
        ));
        let officer = auth.token(&TokenSpec::operator(
            "consent",
            [Scope::DsrSubmit, Scope::DsrManage].into_iter().collect(),
        ));
        let mut timings = Vec::new();
        for run in 0..runs {
            let subject = ProfilesClient::new(profiles.channel())
                .upsert_profile(call(
                    &writer,
                    profiles::UpsertProfileRequest {
                        identifiers: vec![profiles::NewIdentifier {
                            identifier: Some(common::Identifier {
                                kind: common::IdentifierKind::Email.into(),
                                value: format!("erase{run}@example.com"),
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
                .subject_id;
            let batches: Vec<profiles::RecordInteractionsRequest> = (0..INTERACTIONS)
                .collect::<Vec<_>>()
                .chunks(1000)
                .map(|chunk| profiles::RecordInteractionsRequest {
                    interactions: chunk.iter().map(|n| page_view(*n, &subject)).collect(),
                })
                .collect();
            let recorded = InteractionsClient::new(profiles.channel())
                .record_interactions(call(&writer, futures::stream::iter(batches)))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(recorded.recorded as usize, INTERACTIONS);

            let mut requests = DataSubjectRequestsClient::new(consent_channel.clone());
            let started = Instant::now();
            let id = requests
                .submit_request(call(
                    &officer,
                    pb::SubmitRequestRequest {
                        subject: Some(common::SubjectRef {
                            subject: Some(common::subject_ref::Subject::SubjectId(subject.clone())),
                        }),
                        r#type: pb::RequestType::Erasure.into(),
                        channel: pb::RequestChannel::Web.into(),
                        received_at: None,
                        corrections: vec![],
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
                    &officer,
                    pb::VerifyRequesterRequest {
                        request_id: id.clone(),
                        reason: "benchmark".to_owned(),
                    },
                ))
                .await
                .unwrap();
            requests
                .approve_request(call(
                    &officer,
                    pb::ApproveRequestRequest {
                        request_id: id.clone(),
                    },
                ))
                .await
                .unwrap();
            loop {
                let request = requests
                    .get_request(call(
                        &officer,
                        pb::GetRequestRequest {
                            request_id: id.clone(),
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .request
                    .unwrap();
                if request.status() == pb::RequestStatus::Completed {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "stuck: {request:?}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let elapsed = started.elapsed();
            // It did erase them: the certificate's profiles receipt counts them.
            let certificate = requests
                .get_erasure_certificate(call(
                    &officer,
                    pb::GetErasureCertificateRequest {
                        request_id: id.clone(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .certificate_json;
            let certificate: serde_json::Value = serde_json::from_str(&certificate).unwrap();
            let erased: u64 = certificate["receipts"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    r["receipt"]["erased"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter(|e| e["category"] == "interactions")
                .filter_map(|e| e["count"].as_u64())
                .sum();
            assert_eq!(erased as usize, INTERACTIONS, "{certificate}");
            println!(
                "erasure of a subject with {INTERACTIONS} interactions, run {run}: {elapsed:.2?}"
            );
            timings.push(elapsed);
        }
        timings.sort();
        println!(
            "erasure end to end, median of {runs}: {:.2?} (goal < 2 s)",
            timings[timings.len() / 2]
        );
        shutdown.cancel();
    });
}
