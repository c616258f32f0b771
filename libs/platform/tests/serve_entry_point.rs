//! `serve`, the one entry point of every service binary, from configuration to a clean exit on
//! SIGTERM. Its own test binary: it installs the process-wide subscriber and signal handlers.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use diesel::{Connection, RunQueryDsl};
use ecrm_platform::{PlatformConfig, ServiceRoutes};
use ecrm_proto::ecrm::privacy::v1::DescribeRequest;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_testkit::{TestDatabase, with_server_lock};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{FIXTURE, SlowExport};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    platform: PlatformConfig,
}

#[derive(Debug, thiserror::Error)]
#[error("never fails")]
struct NoError;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn wait_until_serving(addr: SocketAddr) -> tonic::transport::Channel {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            let status = HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if status.is_ok_and(|s| s.into_inner().status() == ServingStatus::Serving) {
                return channel;
            }
        }
        assert!(Instant::now() < deadline, "service not serving in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_provisions_migrates_serves_and_exits_cleanly_on_sigterm() {
    let database = TestDatabase::empty().await;
    let addr = free_addr();
    let flags = Flags::try_parse_from([
        "fixture",
        "--listen",
        &addr.to_string(),
        "--database-url",
        database.service_url(&FIXTURE).expose(),
        "--database-admin-url",
        database.admin_url().expose(),
        "--shutdown-grace",
        "100ms",
    ])
    .unwrap();

    // Runs like a service's main: on its own thread, with its own runtime. The role is shared
    // with other test binaries, so provisioning holds the harness lock.
    let service = std::thread::spawn(move || {
        with_server_lock(|_| {
            ecrm_platform::serve(&FIXTURE, flags.platform, |context| async move {
                assert_eq!(context.db.schema(), "fixture");
                Ok::<_, NoError>(
                    ServiceRoutes::unauthenticated().with(PersonalDataServer::new(SlowExport {
                        records: 0,
                        delay: Duration::ZERO,
                    })),
                )
            })
        })
        .unwrap()
    });

    let channel = wait_until_serving(addr).await;
    let described = PersonalDataClient::new(channel)
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.service, "fixture");

    kill(Pid::this(), Signal::SIGTERM).unwrap();
    let code = tokio::task::spawn_blocking(move || service.join().unwrap())
        .await
        .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );

    let mut conn = diesel::PgConnection::establish(database.admin_url().expose()).unwrap();
    let applied: Applied =
        diesel::sql_query("SELECT count(*) AS count FROM fixture.__diesel_schema_migrations")
            .get_result(&mut conn)
            .unwrap();
    assert_eq!(applied.count, support::VERSIONS.len() as i64);
}

#[derive(diesel::QueryableByName)]
struct Applied {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}
