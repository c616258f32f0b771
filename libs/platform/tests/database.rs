//! The service database against a real PostgreSQL: provisioning, migrations under the advisory
//! lock, the schema-pinned pool, units of work, and errors that never leak database text.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::sync::{Arc, Barrier};

use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{PgConnection, QueryableByName, RunQueryDsl};
use ecrm_platform::db::{DbError, PoolOptions, migrate, provision};
use ecrm_platform::{Db, ServiceDef};
use ecrm_testkit::{TestDatabase, assert_migrations_revert, with_server_lock};
use support::{FIXTURE, MIGRATIONS, VERSIONS};
use tonic::Code;

/// A second service in the same database, to check that roles stay out of each other's schema.
static OTHER: ServiceDef = ServiceDef {
    name: "other",
    schema: "other",
    default_port: 0,
    migrations: &MIGRATIONS,
};

#[derive(QueryableByName, Debug)]
struct Row {
    #[diesel(sql_type = Text)]
    value: String,
}

fn texts(conn: &mut PgConnection, sql: &str) -> Result<Vec<String>, DbError> {
    Ok(diesel::sql_query(sql)
        .load::<Row>(conn)?
        .into_iter()
        .map(|r| r.value)
        .collect())
}

fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), DbError> {
    Ok(conn.batch_execute(sql)?)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn migrations_apply_once_and_a_second_run_is_a_no_op() {
    let database = TestDatabase::empty().await;
    database.provision(&FIXTURE).await.unwrap();
    let url = database.service_url(&FIXTURE);

    let (first, second) = blocking(move || {
        let first = migrate(&url, FIXTURE.schema, &MIGRATIONS).unwrap();
        let second = migrate(&url, FIXTURE.schema, &MIGRATIONS).unwrap();
        (first, second)
    })
    .await;

    assert_eq!(first, VERSIONS);
    assert!(second.is_empty(), "second run applied {second:?}");
}

#[tokio::test]
async fn two_processes_migrating_at_once_apply_each_migration_once() {
    let database = TestDatabase::empty().await;
    database.provision(&FIXTURE).await.unwrap();
    let url = database.service_url(&FIXTURE);

    // Each starter has its own connection, so its own advisory-lock session, as two replicas would.
    let barrier = Arc::new(Barrier::new(2));
    let starters: Vec<_> = (0..2)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                migrate(&url, FIXTURE.schema, &MIGRATIONS)
            })
        })
        .collect();
    let mut applied: Vec<String> = starters
        .into_iter()
        .flat_map(|s| s.join().unwrap().unwrap())
        .collect();
    applied.sort();

    assert_eq!(
        applied, VERSIONS,
        "each migration applied by exactly one starter"
    );
    let db = Db::connect(&url, FIXTURE.schema, PoolOptions::default())
        .await
        .unwrap();
    let recorded = db
        .run(|conn| {
            texts(
                conn,
                "SELECT version AS value FROM __diesel_schema_migrations ORDER BY 1",
            )
        })
        .await
        .unwrap();
    assert_eq!(recorded, VERSIONS);
}

#[tokio::test]
async fn every_down_sql_reverts_its_up_sql() {
    assert_migrations_revert(&FIXTURE).await;
}

#[tokio::test]
async fn provisioning_creates_the_role_and_its_schema_and_can_run_again() {
    let database = TestDatabase::empty().await;
    let (admin, url) = (database.admin_url(), database.service_url(&FIXTURE));
    let owner = blocking(move || {
        // The role is cluster-wide and other tests provision it in their databases meanwhile.
        with_server_lock(|_| {
            provision(&admin, &url, FIXTURE.schema).unwrap();
            provision(&admin, &url, FIXTURE.schema).unwrap();
        })
        .unwrap();
        let mut conn = diesel::Connection::establish(admin.expose()).unwrap();
        texts(
            &mut conn,
            "SELECT nspowner::regrole::text AS value FROM pg_namespace WHERE nspname = 'fixture'",
        )
        .unwrap()
    })
    .await;
    assert_eq!(owner, ["ecrm_fixture"]);
}

#[tokio::test]
async fn connections_are_pinned_to_the_service_schema_and_role() {
    let database = TestDatabase::new(&[&FIXTURE]).await;
    let db = database.db(&FIXTURE).await.unwrap();

    let seen = db
        .run(|conn| {
            texts(
                conn,
                "SELECT current_user || ' ' || current_setting('search_path') AS value",
            )
        })
        .await
        .unwrap();

    assert_eq!(seen, ["ecrm_fixture fixture"]);
}

#[tokio::test]
async fn a_service_role_cannot_touch_another_services_schema() {
    let database = TestDatabase::new(&[&FIXTURE, &OTHER]).await;
    let fixture = database.db(&FIXTURE).await.unwrap();

    let error = fixture
        .run(|conn| texts(conn, "SELECT email AS value FROM other.customers"))
        .await
        .unwrap_err();

    match error {
        DbError::Query(diesel::result::Error::DatabaseError(_, info)) => {
            assert!(
                info.message().contains("permission denied"),
                "{}",
                info.message()
            );
        }
        other => panic!("expected permission denied, got {other:?}"),
    }
}

#[tokio::test]
async fn a_unit_of_work_commits_on_ok_and_rolls_back_on_error() {
    let database = TestDatabase::new(&[&FIXTURE]).await;
    let db = database.db(&FIXTURE).await.unwrap();

    db.run(|conn| {
        exec(
            conn,
            "INSERT INTO customers (id, email) VALUES (gen_random_uuid(), 'kept')",
        )
    })
    .await
    .unwrap();
    let failed = db
        .run(|conn| {
            exec(
                conn,
                "INSERT INTO customers (id, email) VALUES (gen_random_uuid(), 'lost')",
            )?;
            Err::<(), DbError>(DbError::NotFound)
        })
        .await;
    assert!(matches!(failed, Err(DbError::NotFound)));

    let emails = db
        .run(|conn| texts(conn, "SELECT email AS value FROM customers ORDER BY 1"))
        .await
        .unwrap();
    assert_eq!(emails, ["kept"]);
}

#[tokio::test]
async fn a_panicking_unit_of_work_is_an_error_and_the_service_goes_on() {
    let database = TestDatabase::new(&[&FIXTURE]).await;
    let db = database.db(&FIXTURE).await.unwrap();

    let result = db
        .run(|_conn| -> Result<(), DbError> { panic!("bug in a unit of work") })
        .await;
    assert!(matches!(result, Err(DbError::Panicked)));

    let after = db
        .run(|conn| texts(conn, "SELECT 'still here' AS value"))
        .await
        .unwrap();
    assert_eq!(after, ["still here"]);
}

#[tokio::test]
async fn database_errors_reach_callers_without_database_text() {
    let database = TestDatabase::new(&[&FIXTURE]).await;
    let db = database.db(&FIXTURE).await.unwrap();
    let email = "jane.doe@example.com";
    let insert = format!("INSERT INTO customers (id, email) VALUES (gen_random_uuid(), '{email}')");
    db.run({
        let insert = insert.clone();
        move |conn| exec(conn, &insert)
    })
    .await
    .unwrap();

    // PostgreSQL's DETAIL for this one is "Key (email)=(jane.doe@example.com) already exists".
    let duplicate = db.run(move |conn| exec(conn, &insert)).await.unwrap_err();
    assert!(
        matches!(&duplicate, DbError::UniqueViolation { constraint } if constraint == "customers_email_key")
    );
    let status = tonic::Status::from(duplicate);
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(!format!("{status:?}").contains(email), "{status:?}");

    // And this one says: invalid input syntax for type uuid: "jane.doe@example.com".
    let cast = db
        .run(move |conn| {
            let rows = diesel::sql_query("SELECT $1::uuid::text AS value")
                .bind::<Text, _>(email)
                .load::<Row>(conn)?;
            Ok::<_, DbError>(rows)
        })
        .await
        .unwrap_err();
    assert!(matches!(cast, DbError::Query(_)));
    let (status, logs) = capture_logs(|| tonic::Status::from(cast));
    assert_eq!(status.code(), Code::Internal);
    assert!(!format!("{status:?}").contains(email), "{status:?}");
    assert!(!status.message().contains("uuid"), "{}", status.message());
    // The log line carries the reference and the kind of failure, not PostgreSQL's text.
    assert!(logs.contains("internal error"), "{logs}");
    assert!(!logs.contains(email), "{logs}");
}

/// Runs `f` with a subscriber that records every log line on this thread.
fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Writer(writer.clone()))
        .with_ansi(false)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let logs = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    (value, logs)
}

struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_pool_that_cannot_connect_fails_at_start() {
    let database = TestDatabase::new(&[&FIXTURE]).await;
    let wrong = database
        .service_url(&FIXTURE)
        .with_database("ecrm_no_such_database");
    let options = PoolOptions {
        connect_timeout: std::time::Duration::from_millis(500),
        ..PoolOptions::default()
    };
    let error = Db::connect(&wrong, FIXTURE.schema, options)
        .await
        .unwrap_err();
    assert!(matches!(error, DbError::Unavailable(_)), "{error:?}");
    assert_eq!(tonic::Status::from(error).code(), Code::Unavailable);
}
