//! The harness itself: separate databases per test, templates, the migration revert check and
//! in-process servers.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::time::Duration;

use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_platform::ServiceDef;
use ecrm_platform::db::DbError;
use ecrm_testkit::{PgServer, TestDatabase, check_migrations_revert, start_server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

static VISITS_MIGRATIONS: EmbeddedMigrations = embed_migrations!("tests/fixtures/visits");
static LEAKY_MIGRATIONS: EmbeddedMigrations = embed_migrations!("tests/fixtures/leaky");

static VISITS: ServiceDef = ServiceDef {
    name: "visits",
    schema: "visits",
    default_port: 0,
    migrations: &VISITS_MIGRATIONS,
};

static LEAKY: ServiceDef = ServiceDef {
    name: "leaky",
    schema: "leaky",
    default_port: 0,
    migrations: &LEAKY_MIGRATIONS,
};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

async fn visit_count(database: &TestDatabase) -> i64 {
    let db = database.db(&VISITS).await.unwrap();
    db.run(|conn| {
        let row: Count = diesel::sql_query("SELECT visit_count() AS count").get_result(conn)?;
        Ok::<_, DbError>(row.count)
    })
    .await
    .unwrap()
}

async fn add_visit(database: &TestDatabase, page: &'static str) {
    let db = database.db(&VISITS).await.unwrap();
    db.run(move |conn| {
        diesel::sql_query("INSERT INTO visits (page) VALUES ($1)")
            .bind::<Text, _>(page)
            .execute(conn)?;
        Ok::<_, DbError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn two_tests_running_at_once_see_separate_databases() {
    let (first, second) =
        tokio::join!(TestDatabase::new(&[&VISITS]), TestDatabase::new(&[&VISITS]));
    assert_ne!(first.name(), second.name());

    add_visit(&first, "/home").await;
    add_visit(&first, "/cart").await;
    add_visit(&second, "/help").await;

    assert_eq!(visit_count(&first).await, 2);
    assert_eq!(visit_count(&second).await, 1);
}

#[tokio::test]
async fn a_test_database_is_dropped_with_its_open_connections() {
    let database = TestDatabase::new(&[&VISITS]).await;
    let name = database.name().to_owned();
    let pool = database.db(&VISITS).await.unwrap();
    drop(database);

    let exists = tokio::task::spawn_blocking(move || {
        #[derive(QueryableByName)]
        struct Present {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            present: bool,
        }
        let server = PgServer::get().unwrap();
        let mut conn = PgConnection::establish(server.admin_url().expose()).unwrap();
        let row: Present = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS present",
        )
        .bind::<Text, _>(name)
        .get_result(&mut conn)
        .unwrap();
        row.present
    })
    .await
    .unwrap();
    assert!(!exists);
    drop(pool);
}

#[tokio::test]
async fn a_database_cloned_from_the_template_has_the_migrated_schema() {
    let database = TestDatabase::new(&[&VISITS]).await;
    assert_eq!(visit_count(&database).await, 0);
    assert_eq!(database.services().len(), 1);
}

#[tokio::test]
async fn a_down_sql_that_leaves_a_function_behind_is_reported() {
    let database = TestDatabase::empty().await;
    database.provision(&LEAKY).await.unwrap();
    let url = database.service_url(&LEAKY);

    let outcome = tokio::task::spawn_blocking(move || {
        check_migrations_revert(&url, LEAKY.schema, LEAKY.migrations).unwrap()
    })
    .await
    .unwrap();

    let not_reverted = outcome.unwrap_err();
    assert_eq!(not_reverted.migration, "20240201000000");
    assert!(
        not_reverted
            .diff
            .iter()
            .any(|line| line.starts_with("+ function visit_count()")),
        "{not_reverted}"
    );
}

#[tokio::test]
async fn a_clean_down_sql_passes_the_revert_check() {
    ecrm_testkit::assert_migrations_revert(&VISITS).await;
}

#[tokio::test]
async fn an_in_process_server_answers_health_on_an_ephemeral_port() {
    let server = start_server(ecrm_platform::ServiceRoutes::unauthenticated())
        .await
        .unwrap();
    assert!(server.addr().ip().is_loopback());
    assert_ne!(server.addr().port(), 0);

    let mut health = server.client(HealthClient::new);
    let response = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status(), ServingStatus::Serving);

    let addr = server.addr();
    server.stop().await.unwrap();
    let refused =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .unwrap();
    assert!(refused.is_err(), "still accepting connections after stop");
}

#[test]
fn without_a_server_a_private_cluster_is_started_from_the_machine_binaries() {
    let root = tempfile::Builder::new()
        .prefix("ecrm-testkit-private-")
        .tempdir_in("/tmp")
        .unwrap();
    let server = PgServer::private_cluster_in(root.path()).unwrap();

    let mut conn = PgConnection::establish(server.admin_url().expose()).unwrap();
    let row: Count = diesel::sql_query("SELECT count(*) AS count FROM pg_database")
        .get_result(&mut conn)
        .unwrap();
    assert!(row.count >= 3);
    drop(conn);

    let cluster = server.cluster().unwrap();
    cluster.stop().unwrap();
    assert!(!cluster.is_running().unwrap());
}
