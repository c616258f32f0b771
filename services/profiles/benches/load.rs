//! Throughput of the profiles service against PostgreSQL doing the least the same work needs:
//!
//! - `ingest`: `RecordInteractions` (orders, 1000 a batch) versus a raw multi-row INSERT of
//!   rows of the same shape and size into the same table of the same PostgreSQL;
//! - `get`: `GetProfile` by subject id versus `pgbench -S` (one indexed SELECT a transaction),
//!   both with the same number of concurrent clients.
//!
//! `cargo bench -p ecrm-profiles --bench load` runs both; `-- ingest` or `-- get` runs one.
//! `LOAD_SECONDS` (default 10) sets each run's length and `LOAD_CLIENTS` (default 8) the
//! concurrency of `get`. The database is a throwaway one on the test server (see `ecrm-testkit`).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark that cannot set up stops with the reason"
)]
#![expect(
    clippy::print_stdout,
    reason = "the figures are the benchmark's output"
)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Text, Timestamptz, Uuid as SqlUuid};
use ecrm_auth::{Scope, Scopes};
use ecrm_crypto::MasterKey;
use ecrm_platform::db::PoolOptions;
use ecrm_platform::{DatabaseUrl, Db, ServiceContext};
use ecrm_profiles::{PURPOSE_HEADER, Profiles, ProfilesConfig, SERVICE};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use tokio_util::sync::CancellationToken;
use tonic::Request;

const BATCH: usize = 1000;
const SUBJECTS: usize = 1000;

struct Service {
    database: TestDatabase,
    server: TestServer,
    token: String,
    subjects: Vec<String>,
    _shutdown: tokio_util::sync::DropGuard,
}

fn seconds() -> Duration {
    Duration::from_secs(
        std::env::var("LOAD_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

fn clients() -> usize {
    std::env::var("LOAD_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// The service on its own database, with its production pool size, and `SUBJECTS` customers.
async fn start() -> Service {
    let database = TestDatabase::new(&[&SERVICE]).await;
    let db = Db::connect(
        &database.service_url(&SERVICE),
        SERVICE.schema,
        PoolOptions::default(),
    )
    .await
    .unwrap();
    let auth = TestAuth::new();
    let verifier = auth.verifier("profiles").await;
    let shutdown = CancellationToken::new();
    let master = Arc::new(MasterKey::generate().unwrap().0);
    let profiles = Profiles::new(
        ServiceContext::new(db, shutdown.clone()),
        ProfilesConfig::new(master),
        verifier,
    )
    .unwrap();
    let server = start_server(profiles.routes()).await.unwrap();
    let token = auth.token(&TokenSpec::internal(
        "profiles",
        [
            Scope::ProfilesRead,
            Scope::ProfilesWrite,
            Scope::EventsWrite,
        ]
        .into_iter()
        .collect::<Scopes>(),
    ));
    let mut client = server.client(ProfilesClient::new);
    let mut subjects = Vec::with_capacity(SUBJECTS);
    for i in 0..SUBJECTS {
        let profile = client
            .upsert_profile(call(
                &token,
                pb::UpsertProfileRequest {
                    identifiers: vec![pb::NewIdentifier {
                        identifier: Some(common::Identifier {
                            kind: common::IdentifierKind::Email.into(),
                            value: format!("customer{i}@example.com"),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    attributes: Some(pb::ProfileAttributes {
                        given_name: format!("Customer {i}"),
                        family_name: "Example".to_owned(),
                        country: "FR".to_owned(),
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
            .unwrap();
        subjects.push(profile.subject_id);
    }
    Service {
        database,
        server,
        token,
        subjects,
        _shutdown: shutdown.drop_guard(),
    }
}

fn order(event_id: String, subject_id: &str, n: usize) -> pb::Interaction {
    let amount = 1_000 + i64::try_from(n % 50_000).unwrap();
    let money = |amount_minor| common::Money {
        amount_minor,
        currency: "EUR".to_owned(),
    };
    pb::Interaction {
        event_id,
        subject: Some(common::SubjectRef {
            subject: Some(common::subject_ref::Subject::SubjectId(
                subject_id.to_owned(),
            )),
        }),
        channel: pb::Channel::Web.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 3600,
            nanos: 0,
        }),
        details: Some(pb::interaction::Details::Order(pb::Order {
            order_id: format!("order-{n}"),
            total: Some(money(amount)),
            line_items: vec![pb::LineItem {
                product_id: format!("sku-{}", n % 997),
                category: "shoes".to_owned(),
                quantity: 1,
                unit_price: Some(money(amount)),
            }],
        })),
    }
}

/// Interactions a second through `RecordInteractions`, one stream of 1000-order batches.
async fn ingest_grpc(service: &Service, run: Duration) -> (f64, usize) {
    let mut client = service.server.client(InteractionsClient::new);
    let mut recorded = 0_u64;
    let mut n = 0_usize;
    let started = Instant::now();
    while started.elapsed() < run {
        let batch: Vec<pb::Interaction> = (0..BATCH)
            .map(|_| {
                n += 1;
                order(
                    format!("grpc-{n}"),
                    &service.subjects[n % service.subjects.len()],
                    n,
                )
            })
            .collect();
        let stream = futures::stream::iter([pb::RecordInteractionsRequest {
            interactions: batch,
        }]);
        recorded += client
            .record_interactions(call(&service.token, stream))
            .await
            .unwrap()
            .into_inner()
            .recorded;
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(recorded, n as u64, "every interaction is new");
    let sealed_len: i32 = {
        let url = service.database.admin_url();
        tokio::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(url.expose()).unwrap();
            #[derive(QueryableByName)]
            struct Len {
                #[diesel(sql_type = diesel::sql_types::Integer)]
                len: i32,
            }
            diesel::sql_query(
                "SELECT max(octet_length(sealed_payload)) AS len FROM profiles.interactions",
            )
            .get_result::<Len>(&mut conn)
            .unwrap()
            .len
        })
        .await
        .unwrap()
    };
    (
        recorded as f64 / elapsed,
        usize::try_from(sealed_len).unwrap(),
    )
}

/// Rows a second of one multi-row INSERT (UNNEST of arrays) of 1000 rows a statement, each its
/// own transaction, into the same table: same columns, payloads of the same length.
async fn ingest_raw(service: &Service, run: Duration, payload_len: usize) -> f64 {
    let url = service.database.admin_url();
    let subjects: Vec<uuid::Uuid> = service
        .subjects
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(url.expose()).unwrap();
        let payload = vec![7_u8; payload_len];
        let occurred = chrono::Utc::now() - chrono::Duration::hours(1);
        let expires = occurred + chrono::Duration::days(3650);
        let mut rows = 0_usize;
        let started = Instant::now();
        while started.elapsed() < run {
            let range = rows..rows + BATCH;
            let ids: Vec<uuid::Uuid> = range.clone().map(|_| uuid::Uuid::now_v7()).collect();
            let events: Vec<String> = range.clone().map(|n| format!("raw-{n}")).collect();
            let owners: Vec<uuid::Uuid> = range.clone().map(|n| subjects[n % subjects.len()]).collect();
            let orders: Vec<String> = range.clone().map(|n| format!("order-{n}")).collect();
            let amounts: Vec<i64> = range.clone().map(|n| 1_000 + (n % 50_000) as i64).collect();
            let payloads: Vec<Vec<u8>> = range.clone().map(|_| payload.clone()).collect();
            diesel::sql_query(
                "INSERT INTO profiles.interactions \
                   (id, event_id, subject_id, kind, channel, occurred_at, order_id, amount_minor, \
                    currency, sealed_payload, expires_at) \
                 SELECT id, event_id, subject_id, 'order', 'web', $6, order_id, amount, 'EUR', \
                        payload, $7 \
                 FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::bigint[], $8::bytea[]) \
                   AS t(id, event_id, subject_id, order_id, amount, payload)",
            )
            .bind::<Array<SqlUuid>, _>(&ids)
            .bind::<Array<Text>, _>(&events)
            .bind::<Array<SqlUuid>, _>(&owners)
            .bind::<Array<Text>, _>(&orders)
            .bind::<Array<BigInt>, _>(&amounts)
            .bind::<Timestamptz, _>(occurred)
            .bind::<Timestamptz, _>(expires)
            .bind::<Array<Bytea>, _>(&payloads)
            .execute(&mut conn)
            .unwrap();
            rows += BATCH;
        }
        rows as f64 / started.elapsed().as_secs_f64()
    })
    .await
    .unwrap()
}

/// `GetProfile` calls a second from `clients` clients, each on its own connection, each
/// reading customers in turn.
async fn get_grpc(service: &Service, clients: usize, run: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let channel =
                tonic::transport::Channel::from_shared(format!("http://{}", service.server.addr()))
                    .unwrap()
                    .connect_lazy();
            let mut client = ProfilesClient::new(channel);
            let token = service.token.clone();
            let subjects = service.subjects.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut i = c;
                while started.elapsed() < run {
                    let mut request = call(
                        &token,
                        pb::GetProfileRequest {
                            subject: Some(common::SubjectRef {
                                subject: Some(common::subject_ref::Subject::SubjectId(
                                    subjects[i % subjects.len()].clone(),
                                )),
                            }),
                        },
                    );
                    request
                        .metadata_mut()
                        .insert(PURPOSE_HEADER, "customer_service".parse().unwrap());
                    let profile = client.get_profile(request).await.unwrap().into_inner();
                    assert!(profile.profile.is_some());
                    done.fetch_add(1, Ordering::Relaxed);
                    i += clients;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The statements `GetProfile` runs for one subject, as a pgbench script: what the database
/// must do for it, without the service around it. `:n` picks one of the benchmark's subjects.
const GET_PROFILE_SQL: &str = r"\set n random(0, 999)
BEGIN;
SELECT subject_id, created_at, updated_at, merged_into, erased_at, restricted_at FROM profiles.profiles WHERE subject_id = (SELECT s FROM bench_subjects WHERE n = :n);
INSERT INTO profiles.access_log (id, subject_id, principal, principal_kind, purpose, method, action) VALUES (gen_random_uuid(), (SELECT s FROM bench_subjects WHERE n = :n), 'bench', 'internal', 'customer_service', 'Profiles/GetProfile', 'read');
SELECT subject_id, wrapped_key FROM profiles.subject_keys WHERE subject_id = ANY(ARRAY(SELECT s FROM bench_subjects WHERE n = :n));
SELECT id, subject_id, kind, partner_id, custom_type, sealed_value, verified_at, verification_method, source, added_at FROM profiles.identifiers WHERE subject_id = ANY(ARRAY(SELECT s FROM bench_subjects WHERE n = :n)) ORDER BY added_at, id;
SELECT id, subject_id, name, sealed_value, source, recorded_at FROM profiles.attribute_values WHERE subject_id = ANY(ARRAY(SELECT s FROM bench_subjects WHERE n = :n)) AND current;
SELECT merged_into, subject_id FROM profiles.profiles WHERE merged_into = ANY(ARRAY(SELECT s FROM bench_subjects WHERE n = :n)) ORDER BY merged_at, subject_id;
END;
";

/// `pgbench` transactions a second with `clients` clients: `-S` (one indexed SELECT) on
/// pgbench's own tables, or `script` with prepared statements.
fn pgbench(url: &DatabaseUrl, clients: usize, run: Duration, script: Option<&str>) -> f64 {
    let threads = clients.min(std::thread::available_parallelism().map_or(2, usize::from));
    let mut command = pgbench_command(url);
    command.args([
        "-n",
        "-c",
        &clients.to_string(),
        "-j",
        &threads.to_string(),
        "-T",
        &run.as_secs().to_string(),
    ]);
    let script_file = script.map(|sql| {
        let file = tempfile_path("get_profile.sql");
        std::fs::write(&file, sql).unwrap();
        file
    });
    match &script_file {
        Some(file) => command.args(["-M", "prepared", "-f"]).arg(file),
        None => command.arg("-S"),
    };
    let out = command.output().unwrap();
    if let Some(file) = script_file {
        let _ = std::fs::remove_file(file);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix("tps = ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no tps in pgbench's output:\n{text}"))
}

/// pgbench on `url`'s database, the connection given through libpq's environment so that no
/// password shows on a command line.
fn pgbench_command(url: &DatabaseUrl) -> Command {
    let mut command = Command::new("pgbench");
    command
        .env("PGHOST", url.host().unwrap_or("127.0.0.1"))
        .env("PGPORT", url.port().unwrap_or(5432).to_string())
        .env("PGUSER", url.username())
        .env("PGDATABASE", url.database());
    if let Some(password) = url.password() {
        command.env("PGPASSWORD", password);
    }
    command
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ecrm-load-{}-{name}", std::process::id()))
}

/// Makes pgbench's tables (scale 10) and a numbered list of the service's subjects in the
/// benchmark's database.
fn pgbench_init(url: &DatabaseUrl, subjects: &[String]) {
    let init = pgbench_command(url)
        .args(["-i", "-q", "-s", "10"])
        .output()
        .expect("pgbench must be installed (postgresql-contrib or postgresql-client)");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut conn = PgConnection::establish(url.expose()).unwrap();
    diesel::sql_query("CREATE TABLE bench_subjects (n int PRIMARY KEY, s uuid NOT NULL)")
        .execute(&mut conn)
        .unwrap();
    let ids: Vec<uuid::Uuid> = subjects.iter().map(|s| s.parse().unwrap()).collect();
    diesel::sql_query(
        "INSERT INTO bench_subjects SELECT n - 1, s FROM unnest($1::uuid[]) WITH ORDINALITY AS t(s, n)",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .execute(&mut conn)
    .unwrap();
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(ecrm_platform::db::BLOCKING_THREAD_BUDGET as usize)
        .build()
        .unwrap();
    let run = seconds();
    runtime.block_on(async {
        if runs("ingest") {
            let service = start().await;
            let (grpc, payload_len) = ingest_grpc(&service, run).await;
            let raw = ingest_raw(&service, run, payload_len).await;
            println!(
                "ingest: RecordInteractions {grpc:.0}/s, raw multi-row INSERT {raw:.0}/s: {:.2}x (goal >= 0.5x)",
                grpc / raw
            );
        }
        if runs("get") {
            let service = start().await;
            let clients = clients();
            let grpc = get_grpc(&service, clients, run).await;
            let url = service.database.admin_url();
            let subjects = service.subjects.clone();
            let (select, same_sql) = tokio::task::spawn_blocking(move || {
                pgbench_init(&url, &subjects);
                (
                    pgbench(&url, clients, run, None),
                    pgbench(&url, clients, run, Some(GET_PROFILE_SQL)),
                )
            })
            .await
            .unwrap();
            println!(
                "get: GetProfile {grpc:.0}/s, pgbench -S {select:.0} tps, {clients} clients each: {:.2}x (goal >= 0.5x)",
                grpc / select
            );
            println!(
                "get: GetProfile {grpc:.0}/s, pgbench running GetProfile's own statements {same_sql:.0} tps: {:.2}x",
                grpc / same_sql
            );
        }
    });
}
