//! The suite as a library: several at once on one PostgreSQL server, each with roles of its
//! own, and a start that fails cleanly.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ecrm_platform::DatabaseUrl;
use ecrm_suite::{Member, OutboundOptions, Suite, SuiteError, SuiteKeys, SuiteOptions};
use ecrm_testkit::TestDatabase;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Owned {
    #[diesel(sql_type = Text)]
    schema: String,
    #[diesel(sql_type = Text)]
    owner: String,
}

fn owners(url: &DatabaseUrl) -> Vec<(String, String)> {
    let mut conn = PgConnection::establish(url.expose()).unwrap();
    let owned: Vec<Owned> = diesel::sql_query(
        "SELECT nspname::text AS schema, nspowner::regrole::text AS owner FROM pg_namespace \
         WHERE nspname IN ('identity', 'profiles', 'consent', 'segmentation', 'outbound') \
         ORDER BY 1",
    )
    .load(&mut conn)
    .unwrap();
    owned.into_iter().map(|o| (o.schema, o.owner)).collect()
}

fn roles_named(admin: &DatabaseUrl, prefix: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Role {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let mut conn = PgConnection::establish(admin.expose()).unwrap();
    let roles: Vec<Role> = diesel::sql_query(
        "SELECT rolname::text AS name FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1",
    )
    .bind::<Text, _>(format!("{prefix}_"))
    .load(&mut conn)
    .unwrap();
    roles.into_iter().map(|r| r.name).collect()
}

async fn serving(suite: &Suite) {
    for (member, _) in suite.endpoints() {
        let health = HealthClient::new(suite.channel(member).unwrap())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap_or_else(|status| panic!("{member}: {status:?}"))
            .into_inner();
        assert_eq!(health.status(), ServingStatus::Serving, "{member}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_suites_share_a_server_each_with_roles_of_its_own() {
    let (first_db, second_db) = (TestDatabase::empty().await, TestDatabase::empty().await);
    // Named after the databases: unique on the server, like the roles of any test.
    let prefixes = [&first_db, &second_db].map(|db| format!("ecrm_suite_{}", &db.name()[10..22]));
    let options = |database: &TestDatabase, prefix: &str| SuiteOptions {
        role_prefix: prefix.to_owned(),
        ..SuiteOptions::new(database.admin_url(), SuiteKeys::generate().unwrap())
    };
    // Started together: neither resets the other's roles while it provisions.
    let (first, second) = tokio::join!(
        Suite::start(options(&first_db, &prefixes[0])),
        Suite::start(options(&second_db, &prefixes[1]))
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    serving(&first).await;
    serving(&second).await;
    assert!(first.first_operator().unwrap().generated);
    assert_ne!(first.addr(Member::Identity), second.addr(Member::Identity));
    for (database, prefix) in [(&first_db, &prefixes[0]), (&second_db, &prefixes[1])] {
        let expected: Vec<(String, String)> = [
            "consent",
            "identity",
            "outbound",
            "profiles",
            "segmentation",
        ]
        .into_iter()
        .map(|schema| (schema.to_owned(), format!("{prefix}_{schema}")))
        .collect();
        assert_eq!(owners(&database.admin_url()), expected);
    }
    first.stop().await.unwrap();
    second.stop().await.unwrap();

    let admin = first_db.admin_url().with_database("postgres");
    // A role still owning a schema is not dropped.
    assert!(ecrm_suite::drop_roles(&admin, &prefixes[1]).is_err());
    assert_eq!(roles_named(&admin, &prefixes[1]).len(), 5);
    drop((first_db, second_db));
    for prefix in &prefixes {
        ecrm_suite::drop_roles(&admin, prefix).unwrap();
        assert!(roles_named(&admin, prefix).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_fails_the_start_naming_what_needed_it_before_anything_is_provisioned() {
    let database = TestDatabase::empty().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let options = SuiteOptions {
        role_prefix: format!("ecrm_suite_{}", &database.name()[10..22]),
        outbound: OutboundOptions {
            http_addr: taken.local_addr().unwrap(),
            ..OutboundOptions::default()
        },
        ..SuiteOptions::new(database.admin_url(), SuiteKeys::generate().unwrap())
    };
    match Suite::start(options).await {
        Err(SuiteError::Bind { service, addr, .. }) => {
            assert_eq!(service, "outbound's unsubscribe pages");
            assert_eq!(addr, taken.local_addr().unwrap());
        }
        other => panic!("{other:?}"),
    }
    assert!(owners(&database.admin_url()).is_empty());
}

#[tokio::test]
async fn a_role_prefix_that_makes_no_plain_role_name_is_refused() {
    let database = TestDatabase::empty().await;
    for prefix in ["", "Ecrm", "ecrm-e2e", "9ecrm"] {
        let options = SuiteOptions {
            role_prefix: prefix.to_owned(),
            ..SuiteOptions::new(database.admin_url(), SuiteKeys::generate().unwrap())
        };
        assert!(
            matches!(Suite::start(options).await, Err(SuiteError::RolePrefix(_))),
            "{prefix:?}"
        );
    }
}
