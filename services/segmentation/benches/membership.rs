//! The incremental membership update after one purchase: one order change from the profiles
//! feed applied the way the follower applies it (the projection's aggregates, then the
//! customer evaluated again for every segment reading an order fact, scheduling included, in
//! one transaction), with 20 segments defined over `MEMBERSHIP_CUSTOMERS` (default 100,000)
//! customers with five orders each. Run: `cargo bench -p ecrm-segmentation --bench
//! membership`.
#![expect(clippy::unwrap_used, reason = "a benchmark fails by panicking")]
#![expect(
    clippy::print_stdout,
    reason = "the set-up's figures are the benchmark's output"
)]

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use diesel::{Connection as _, RunQueryDsl as _};
use ecrm_auth::Scope;
use ecrm_platform::profiles_feed::ChangeSink;
use ecrm_platform::time::to_timestamp;
use ecrm_platform::{Db, ServiceContext};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::segments_client::SegmentsClient;
use ecrm_segmentation::{SERVICE, Segmentation, SegmentationConfig, SegmentationError};
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use tonic::Request;

/// Twenty rules over order, spend, time and visit facts.
const RULES: [&str; 20] = [
    "orders >= 1",
    "orders_30d >= 2",
    "orders_90d >= 3 and spend_90d > 100",
    "spend > 500",
    "days_since_last_order > 60",
    "days_since_last_order <= 30 and orders >= 2",
    "days_as_customer < 90",
    "returns > 0",
    "spend_365d >= 200 and spend_365d < 1000",
    "visit_days >= 3",
    "orders_365d in [1, 2]",
    "not (orders > 5)",
    "days_since_first_order > 300",
    "spend_30d > 50 or orders_30d >= 3",
    "orders >= 10",
    r#"rfm.segment in ["Champions", "Loyal"]"#,
    "rfm.r >= 4",
    "days_since_last_visit <= 7",
    "spend_90d > 300",
    "orders_90d == 1",
];

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

fn admin(database: &TestDatabase, sql: &str) {
    let mut conn = diesel::PgConnection::establish(database.admin_url().expose()).unwrap();
    diesel::sql_query(sql).execute(&mut conn).unwrap();
}

struct Setup {
    _database: TestDatabase,
    _server: TestServer,
    db: Db,
    segmentation: Segmentation,
    subjects: Vec<uuid::Uuid>,
    _shutdown: tokio_util::sync::DropGuard,
}

async fn setup() -> Setup {
    let customers = setting("MEMBERSHIP_CUSTOMERS", 100_000);
    let database = TestDatabase::new(&[&SERVICE]).await;
    admin(
        &database,
        &format!(
            "INSERT INTO segmentation.customers (subject_id, created_at) \
             SELECT md5(i::text)::uuid, now() - (i % 700) * INTERVAL '1 day' \
             FROM generate_series(1, {customers}) i"
        ),
    );
    admin(
        &database,
        &format!(
            "INSERT INTO segmentation.orders (interaction_id, subject_id, kind, order_id, \
                 occurred_at, amount_minor, currency, reporting_minor) \
             SELECT md5('o' || n::text)::uuid, md5((1 + n % {customers})::text)::uuid, \
                    'order', 'o' || n, now() - (random() * 400)::int * INTERVAL '1 day', \
                    a, 'EUR', a \
             FROM (SELECT n, (500 + random() * 20000)::bigint AS a \
                   FROM generate_series(1, {customers} * 5) n) g"
        ),
    );
    admin(
        &database,
        "UPDATE segmentation.customers c SET order_count = o.n, monetary_minor = o.m, \
           first_purchase_at = o.first, last_purchase_at = o.last \
         FROM (SELECT subject_id, count(*)::int AS n, sum(reporting_minor)::bigint AS m, \
                      min(occurred_at) AS first, max(occurred_at) AS last \
               FROM segmentation.orders GROUP BY subject_id) o \
         WHERE o.subject_id = c.subject_id",
    );
    admin(&database, "ANALYZE");
    let db = database.db(&SERVICE).await.unwrap();
    let auth = TestAuth::new();
    let shutdown = CancellationToken::new();
    let segmentation = Segmentation::new(
        &ServiceContext::new(db.clone(), shutdown.clone()),
        &SegmentationConfig::new(),
        auth.verifier("segmentation").await,
    )
    .unwrap();
    let server = start_server(segmentation.routes()).await.unwrap();
    let token = auth.token(&TokenSpec::internal(
        "segmentation",
        [Scope::SegmentsRead, Scope::SegmentsWrite]
            .into_iter()
            .collect(),
    ));
    let mut client = server.client(SegmentsClient::new);
    for (i, rule) in RULES.iter().enumerate() {
        client
            .define_segment(call(
                &token,
                pb::DefineSegmentRequest {
                    segment: Some(pb::Segment {
                        name: format!("segment-{i}"),
                        rule: (*rule).to_owned(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
    }
    // Populating is the background upkeep's: wait for it, so it does not compete.
    let started = Instant::now();
    loop {
        let segments = client
            .list_segments(call(&token, pb::ListSegmentsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .segments;
        if segments.iter().all(|s| s.populated_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "populated {} segments over {customers} customers in {:.1} s",
        RULES.len(),
        started.elapsed().as_secs_f64()
    );
    admin(&database, "ANALYZE");
    let mut conn = diesel::PgConnection::establish(database.admin_url().expose()).unwrap();
    let subjects = segmentation_subjects(&mut conn);
    Setup {
        _database: database,
        _server: server,
        db,
        segmentation,
        subjects,
        _shutdown: shutdown.drop_guard(),
    }
}

/// Every customer's subject id.
fn segmentation_subjects(conn: &mut diesel::PgConnection) -> Vec<uuid::Uuid> {
    #[derive(diesel::QueryableByName)]
    struct Subject {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        subject_id: uuid::Uuid,
    }
    diesel::sql_query("SELECT subject_id FROM segmentation.customers")
        .load::<Subject>(conn)
        .unwrap()
        .into_iter()
        .map(|s| s.subject_id)
        .collect()
}

/// An order of `subject`, placed now, as the profiles feed carries it.
fn purchase(subject: uuid::Uuid) -> profiles::Change {
    profiles::Change {
        kind: profiles::ChangeKind::InteractionRecorded.into(),
        subject_id: subject.to_string(),
        occurred_at: Some(to_timestamp(Utc::now())),
        interaction: Some(profiles::InteractionSummary {
            interaction_id: uuid::Uuid::now_v7().to_string(),
            kind: profiles::InteractionKind::Order.into(),
            occurred_at: Some(to_timestamp(Utc::now())),
            order_id: "bench".to_owned(),
            amount: Some(common::Money {
                amount_minor: 4_990,
                currency: "EUR".to_owned(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn membership(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let setup = runtime.block_on(setup());
    let sink = setup.segmentation.change_sink();
    let mut next = 0_usize;
    c.bench_function("one purchase: projection and 20 segments", |b| {
        b.iter(|| {
            next = (next + 7919) % setup.subjects.len();
            let change = purchase(setup.subjects[next]);
            let sink = sink.clone();
            runtime
                .block_on(setup.db.run(move |conn| {
                    sink.apply(conn, &[change])?;
                    Ok::<_, SegmentationError>(())
                }))
                .unwrap();
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(200).measurement_time(Duration::from_secs(10));
    targets = membership
}
criterion_main!(benches);
