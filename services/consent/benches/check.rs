//! `CheckConsent` for 10,000 subjects through the running service (gRPC, auth, PostgreSQL), with
//! decisions recorded for a fifth of them, once the planner has statistics (as autovacuum
//! gives a running service). Run: `cargo bench -p ecrm-consent --bench check`.
#![expect(clippy::unwrap_used, reason = "a benchmark fails by panicking")]

use criterion::{Criterion, criterion_group, criterion_main};
use ecrm_auth::{Scope, Scopes};
use ecrm_consent::{Consent, ConsentConfig, MAX_CHECK_SUBJECTS, SERVICE};
use ecrm_crypto::MasterKey;
use ecrm_platform::ServiceContext;
use ecrm_platform::db::PoolOptions;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use tonic::Request;

fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

struct Setup {
    _database: TestDatabase,
    server: TestServer,
    token: String,
    subjects: Vec<String>,
    _shutdown: tokio_util::sync::DropGuard,
}

async fn setup() -> Setup {
    let database = TestDatabase::new(&[&SERVICE]).await;
    let db = ecrm_platform::Db::connect(
        &database.service_url(&SERVICE),
        SERVICE.schema,
        PoolOptions::default(),
    )
    .await
    .unwrap();
    let auth = TestAuth::new();
    let shutdown = CancellationToken::new();
    let consent = Consent::new(
        &ServiceContext::new(db, shutdown.clone()),
        &ConsentConfig::new(std::sync::Arc::new(MasterKey::generate().unwrap().0)),
        auth.verifier("consent").await,
    )
    .unwrap();
    let server = start_server(consent.routes()).await.unwrap();
    let token = auth.token(&TokenSpec::internal(
        "consent",
        [Scope::ConsentRead, Scope::ConsentWrite]
            .into_iter()
            .collect::<Scopes>(),
    ));
    let mut purposes = server.client(PurposesClient::new);
    purposes
        .define_purpose(call(
            &token,
            pb::DefinePurposeRequest {
                purpose: Some(pb::Purpose {
                    key: "newsletter".to_owned(),
                    description: "The weekly newsletter".to_owned(),
                    lawful_basis: common::LawfulBasis::Consent.into(),
                    channels: vec![pb::Channel::Email.into()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let notice = purposes
        .publish_notice(call(
            &token,
            pb::PublishNoticeRequest {
                purpose_key: "newsletter".to_owned(),
                text: "Our weekly newsletter.".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version;
    let subjects: Vec<String> = (0..MAX_CHECK_SUBJECTS)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let mut consents = server.client(ConsentsClient::new);
    for (i, subject) in subjects.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let decision = if i % 2 == 0 {
            pb::Decision::Granted
        } else {
            pb::Decision::Withdrawn
        };
        consents
            .record_consent(call(
                &token,
                pb::RecordConsentRequest {
                    subject_id: subject.clone(),
                    purpose_key: "newsletter".to_owned(),
                    decision: decision.into(),
                    channel: pb::Channel::Email.into(),
                    collection_point: "checkout".to_owned(),
                    notice_version: notice.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    // As autovacuum would soon: a running service has statistics for the planner.
    let admin = database.admin_url();
    tokio::task::spawn_blocking(move || {
        use diesel::{Connection as _, RunQueryDsl as _};
        let mut conn = diesel::PgConnection::establish(admin.expose()).unwrap();
        diesel::sql_query("ANALYZE consent.ledger")
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();
    Setup {
        _database: database,
        server,
        token,
        subjects,
        _shutdown: shutdown.drop_guard(),
    }
}

fn check(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let setup = runtime.block_on(setup());
    let client = setup.server.client(ConsentsClient::new);
    let request = pb::CheckConsentRequest {
        purpose_key: "newsletter".to_owned(),
        channel: pb::Channel::Email.into(),
        subject_ids: setup.subjects.clone(),
    };
    c.bench_function("CheckConsent, 10,000 subjects", |b| {
        b.to_async(&runtime).iter(|| {
            let mut client = client.clone();
            let request = call(&setup.token, request.clone());
            async move {
                let decisions = client.check_consent(request).await.unwrap().into_inner();
                assert_eq!(decisions.decisions.len(), MAX_CHECK_SUBJECTS);
            }
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = check
}
criterion_main!(benches);
