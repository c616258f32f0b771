//! A full RFM computation through the running service (ComputeRfm, then GetRfmJob until done)
//! against one native SQL statement computing and storing the same scores and segments with
//! window functions, on the same data, database and machine: at the server's default
//! `work_mem`, and at the `work_mem` the service gives its computations.
//!
//! Run: `cargo bench -p ecrm-segmentation --bench rfm`. `RFM_CUSTOMERS` (default 1,000,000)
//! customers with `RFM_ORDERS` (default 10,000,000) orders spread over 400 days; `RFM_RUNS`
//! (default 3) runs of each, the median reported.
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

use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, RunQueryDsl as _};
use ecrm_auth::Scope;
use ecrm_platform::ServiceContext;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::rfm_client::RfmClient;
use ecrm_segmentation::{SERVICE, Segmentation, SegmentationConfig};
use ecrm_testkit::{TestAuth, TestDatabase, TokenSpec, start_server};
use tokio_util::sync::CancellationToken;
use tonic::Request;

/// The day scores are computed as of; orders fall in the 400 days before it.
const AS_OF: &str = "2026-10-31";

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

/// Runs `sql` as the server's administrator on the test database.
fn admin(database: &TestDatabase, sql: &str) {
    let mut conn = diesel::PgConnection::establish(database.admin_url().expose()).unwrap();
    diesel::sql_query(sql).execute(&mut conn).unwrap();
}

/// Runs the native statement into an empty `rfm_native`, at the server's default `work_mem` or
/// at `work_mem`; returns how long the statement took.
fn native(database: &TestDatabase, work_mem: Option<&str>) -> Duration {
    admin(database, "TRUNCATE segmentation.rfm_native");
    let mut conn = diesel::PgConnection::establish(database.admin_url().expose()).unwrap();
    if let Some(work_mem) = work_mem {
        conn.batch_execute(&format!("SET work_mem = '{work_mem}'"))
            .unwrap();
    }
    let started = Instant::now();
    diesel::sql_query(native_sql()).execute(&mut conn).unwrap();
    started.elapsed()
}

/// The same measures, scores and segments as ComputeRfm with 5 bins over 365 days, in one
/// statement, stored in a table of its own.
fn native_sql() -> String {
    format!(
        "INSERT INTO segmentation.rfm_native \
         WITH m AS ( \
           SELECT o.subject_id, \
                  DATE '{AS_OF}' - (max(o.occurred_at) FILTER (WHERE o.kind = 'order') \
                                    AT TIME ZONE 'UTC')::date AS recency, \
                  count(*) FILTER (WHERE o.kind = 'order') AS frequency, \
                  COALESCE(sum(CASE WHEN o.kind = 'order' THEN o.reporting_minor \
                                    ELSE -o.reporting_minor END), 0)::bigint AS monetary \
           FROM segmentation.orders o \
           JOIN segmentation.customers c ON c.subject_id = o.subject_id AND NOT c.restricted \
           WHERE NOT EXISTS (SELECT 1 FROM segmentation.profiling_objections p \
                             WHERE p.subject_id = o.subject_id) \
             AND o.occurred_at >= (DATE '{AS_OF}' + 1 - 365)::timestamp AT TIME ZONE 'UTC' \
             AND o.occurred_at < (DATE '{AS_OF}' + 1)::timestamp AT TIME ZONE 'UTC' \
           GROUP BY o.subject_id \
           HAVING count(*) FILTER (WHERE o.kind = 'order') > 0), \
         s AS ( \
           SELECT subject_id, recency, frequency, monetary, \
                  1 + (rank() OVER (ORDER BY recency DESC) - 1) * 5 / count(*) OVER () AS r, \
                  1 + (rank() OVER (ORDER BY frequency) - 1) * 5 / count(*) OVER () AS f, \
                  1 + (rank() OVER (ORDER BY monetary) - 1) * 5 / count(*) OVER () AS m \
           FROM m) \
         SELECT subject_id, recency, frequency, monetary, r, f, m, \
                CASE WHEN r = 5 AND f >= 4 THEN 'Champions' \
                     WHEN r BETWEEN 3 AND 4 AND f >= 4 THEN 'Loyal' \
                     WHEN r >= 4 AND f BETWEEN 2 AND 3 THEN 'Potential Loyalist' \
                     WHEN r = 5 AND f = 1 THEN 'New' \
                     WHEN r = 4 AND f = 1 THEN 'Promising' \
                     WHEN r = 3 AND f = 3 THEN 'Need Attention' \
                     WHEN r = 3 AND f <= 2 THEN 'About to Sleep' \
                     WHEN r <= 2 AND f BETWEEN 3 AND 4 THEN 'At Risk' \
                     WHEN r <= 2 AND f = 5 THEN 'Can''t Lose Them' \
                     WHEN r = 1 AND f = 1 THEN 'Lost' \
                     ELSE 'Hibernating' END \
         FROM s"
    )
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let customers = setting("RFM_CUSTOMERS", 1_000_000);
    let orders = setting("RFM_ORDERS", 10_000_000);
    let runs = setting("RFM_RUNS", 3).max(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(TestDatabase::new(&[&SERVICE]));

    let loading = Instant::now();
    admin(&database, "SELECT setseed(0.42)");
    admin(
        &database,
        &format!(
            "INSERT INTO segmentation.customers (subject_id, created_at) \
             SELECT md5(i::text)::uuid, TIMESTAMPTZ '2024-01-01 00:00Z' \
             FROM generate_series(1, {customers}) i"
        ),
    );
    admin(
        &database,
        &format!(
            "INSERT INTO segmentation.orders (interaction_id, subject_id, kind, order_id, \
                 occurred_at, amount_minor, currency, reporting_minor) \
             SELECT md5('o' || n::text)::uuid, md5((1 + (n::bigint * 7919) % {customers})::text)::uuid, \
                    'order', 'o' || n, \
                    TIMESTAMPTZ '{AS_OF} 12:00Z' - (random() * 400)::int * INTERVAL '1 day', \
                    a, 'EUR', a \
             FROM (SELECT n, (500 + random() * 20000)::bigint AS a \
                   FROM generate_series(1, {orders}) n) g"
        ),
    );
    admin(&database, "ANALYZE segmentation.orders");
    admin(&database, "ANALYZE segmentation.customers");
    admin(
        &database,
        "CREATE TABLE segmentation.rfm_native (subject_id uuid, recency integer, \
         frequency bigint, monetary bigint, r bigint, f bigint, m bigint, segment text)",
    );
    println!(
        "loaded {customers} customers and {orders} orders in {:.1?}",
        loading.elapsed()
    );

    let auth = Arc::new(TestAuth::new());
    let shutdown = CancellationToken::new();
    let server = runtime.block_on(async {
        let segmentation = Segmentation::new(
            &ServiceContext::new(database.db(&SERVICE).await.unwrap(), shutdown.clone()),
            &SegmentationConfig::new(),
            auth.verifier("segmentation").await,
        )
        .unwrap();
        start_server(segmentation.routes()).await.unwrap()
    });
    let token = auth.token(&TokenSpec::internal(
        "segmentation",
        [Scope::SegmentsRead, Scope::SegmentsWrite]
            .into_iter()
            .collect(),
    ));
    let as_of = chrono::NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();

    // Warm the cache once, so neither side pays for reading the orders from disk first.
    admin(&database, &native_sql());
    admin(&database, "TRUNCATE segmentation.rfm_native");

    let mut service_runs = Vec::new();
    let mut native_runs = Vec::new();
    let mut tuned_runs = Vec::new();
    let mut scored = 0;
    for run in 0..runs {
        let started = Instant::now();
        let job = runtime.block_on(async {
            let mut client = server.client(RfmClient::new);
            let job = client
                .compute_rfm(call(
                    &token,
                    pb::ComputeRfmRequest {
                        as_of: Some(prost_types::Timestamp {
                            seconds: as_of.timestamp(),
                            nanos: 0,
                        }),
                        window_days: 365,
                        bins: 5,
                        currency: String::new(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .job
                .unwrap();
            loop {
                let now = client
                    .get_rfm_job(call(
                        &token,
                        pb::GetRfmJobRequest {
                            job_id: job.job_id.clone(),
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .job
                    .unwrap();
                match now.state() {
                    pb::RfmJobState::Running => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    pb::RfmJobState::Done => return now,
                    _ => panic!("the computation failed: {now:?}"),
                }
            }
        });
        let elapsed = started.elapsed();
        scored = job.customers;
        service_runs.push(elapsed);

        let native = native(&database, None);
        native_runs.push(native);
        let tuned = self::native(&database, Some("256MB"));
        tuned_runs.push(tuned);
        println!(
            "run {run}: service {elapsed:.2?} ({} customers scored), native SQL {native:.2?}, \
             native SQL at the service's work_mem {tuned:.2?}",
            job.customers
        );
    }
    let (service, native, tuned) = (
        median(service_runs),
        median(native_runs),
        median(tuned_runs),
    );
    println!(
        "RFM over {scored} customers scored ({customers} customers, {orders} orders), median of {runs}: \
         service {service:.2?}, native SQL {native:.2?}, ratio {:.2} (goal <= 1.0); \
         native SQL at the service's work_mem (256MB) {tuned:.2?}, ratio {:.2}",
        service.as_secs_f64() / native.as_secs_f64(),
        service.as_secs_f64() / tuned.as_secs_f64()
    );
    shutdown.cancel();
}
