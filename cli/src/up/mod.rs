//! `ecrm up`: the whole suite in one process on this machine, on a private PostgreSQL unless a
//! database URL is given.

mod database;
mod services;
mod suite;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ecrm_crypto::Secret;
use ecrm_platform::config::{ShutdownConfig, TelemetryConfig};
use ecrm_platform::server::ServeError;
use ecrm_platform::{DatabaseUrl, Db, RunningServer, ServiceContext, Telemetry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::database::{SuiteDatabase, provision_member};
use self::services::SuiteSettings;
use self::suite::{MEMBERS, Member};

/// Start every eCRM service in this process, each on its own port.
///
/// With no database URL, a private PostgreSQL cluster is created on first use in
/// `<data-dir>/pg` from the machine's PostgreSQL server binaries and started on 127.0.0.1;
/// Ctrl-C stops the services and then that cluster. Each service gets its own schema and role.
///
/// Examples:
///
///   ecrm up
///
///   ecrm up --base-port 60051
///
///   ecrm up --database-url postgres://postgres@db.internal:5432/ecrm
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct UpArgs {
    /// PostgreSQL URL of an existing database, as a role that may create roles and schemas
    /// (a superuser, or one with CREATEROLE). Without it, a private cluster is used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<DatabaseUrl>,
    /// Folder for the private cluster and other local state.
    #[arg(long, env = "ECRM_DATA_DIR", default_value = ".ecrm")]
    data_dir: PathBuf,
    /// Port of the private cluster on 127.0.0.1; 0 picks a free one.
    #[arg(long, env = "ECRM_PG_PORT", default_value_t = 0)]
    pg_port: u16,
    /// Address the services listen on.
    #[arg(long, env = "ECRM_HOST", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Port of the first service (identity); the others follow in order. 0 gives each
    /// service a free port, printed at start.
    #[arg(long, env = "ECRM_BASE_PORT", default_value_t = 50051)]
    base_port: u16,
    /// Password of the first operator (`admin`), created when there is none yet. Unset: one is
    /// generated and printed once.
    #[arg(long, env = "ECRM_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true, value_parser = ecrm_platform::config::SecretParser::<Secret<String>>::new())]
    bootstrap_admin_password: Option<Secret<String>>,
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

#[derive(Debug, thiserror::Error)]
enum UpError {
    #[error(transparent)]
    Config(#[from] ecrm_platform::config::ConfigError),
    #[error("--base-port {0} leaves no room for the {count} services below port 65535", count = MEMBERS.len())]
    BasePort(u16),
    #[error(transparent)]
    Database(#[from] database::DatabaseError),
    #[error(
        "cannot listen on {addr} for {service}: another process may use it; pass --base-port to move every service"
    )]
    Bind {
        service: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the {service} database pool")]
    Pool {
        service: &'static str,
        #[source]
        source: ecrm_platform::DbError,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot use {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another `ecrm up` is running with {0}: stop it first, or pass another --data-dir")]
    AlreadyRunning(PathBuf),
    #[error(transparent)]
    Build(#[from] services::BuildError),
    #[error("cannot migrate the {service} schema")]
    Migrate {
        service: &'static str,
        #[source]
        source: ecrm_platform::db::MigrationError,
    },
}

/// Runs `ecrm up` to completion.
pub fn run(args: UpArgs) -> ExitCode {
    if let Err(error) = args.telemetry.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(ecrm_platform::db::BLOCKING_THREAD_BUDGET as usize)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!(
                "error: {}",
                ecrm_platform::status::chain(&UpError::Runtime(error))
            );
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the OTLP exporter's gRPC channel binds to the runtime it is built in.
    let telemetry = match runtime.block_on(async { Telemetry::init(&args.telemetry, "ecrm") }) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {}", ecrm_platform::status::chain(&error));
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(up(args));
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", ecrm_platform::status::chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn up(args: UpArgs) -> Result<(), UpError> {
    let ports = ports(args.base_port)?;
    // Held until we return: a second `ecrm up` on this folder would restart (and so take over)
    // the first one's PostgreSQL.
    let _owner = lock_data_dir(&args.data_dir)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(ecrm_platform::shutdown::cancel_on_signal(shutdown.clone()));

    let mut settings = SuiteSettings::load(&args.data_dir, args.bootstrap_admin_password.clone())?;
    settings.outbound_http =
        std::net::SocketAddr::new(args.host, outbound_http_port(args.base_port)?);
    let database =
        SuiteDatabase::open(args.database_url.clone(), &args.data_dir, args.pg_port).await?;
    // Whatever happens while serving, a cluster we started is stopped before we return.
    let served = serve_suite(&database, &settings, args.host, &ports, shutdown).await;
    let stopped = database.close().await;
    served?;
    stopped?;
    say!("stopped");
    Ok(())
}

fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, UpError> {
    let io = |source| UpError::DataDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("up.lock"))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(UpError::AlreadyRunning(dir.to_owned())),
        Err(std::fs::TryLockError::Error(error)) => Err(io(error)),
    }
}

fn ports(base: u16) -> Result<Vec<u16>, UpError> {
    MEMBERS
        .iter()
        .map(|member| match base {
            0 => Ok(0),
            base => base
                .checked_add(member.port_offset)
                .ok_or(UpError::BasePort(base)),
        })
        .collect()
}

/// Outbound's one-click unsubscribe pages: the port after the last service's (50056).
fn outbound_http_port(base: u16) -> Result<u16, UpError> {
    match base {
        0 => Ok(0),
        base => u16::try_from(MEMBERS.len())
            .ok()
            .and_then(|count| base.checked_add(count))
            .ok_or(UpError::BasePort(base)),
    }
}

/// A member of the suite, running.
struct Running {
    member: &'static Member,
    server: RunningServer,
}

async fn serve_suite(
    database: &SuiteDatabase,
    settings: &SuiteSettings,
    host: IpAddr,
    ports: &[u16],
    shutdown: CancellationToken,
) -> Result<(), UpError> {
    let mut running = Vec::with_capacity(MEMBERS.len());
    let mut notices = Vec::new();
    let started = start_members(
        database,
        settings,
        host,
        ports,
        &shutdown,
        &mut running,
        &mut notices,
    )
    .await;
    if started.is_ok() && !shutdown.is_cancelled() {
        print_endpoints(database, &running, &notices);
        shutdown.cancelled().await;
        say!("stopping");
    }
    shutdown.cancel();
    let mut stopped = Ok(());
    for member in running {
        if let Err(error) = member.server.wait().await {
            tracing::error!(service = member.member.name, error = %ecrm_platform::status::chain(&error), "service stopped on error");
            stopped = Err(error.into());
        }
    }
    started.and(stopped)
}

async fn start_members(
    database: &SuiteDatabase,
    settings: &SuiteSettings,
    host: IpAddr,
    ports: &[u16],
    shutdown: &CancellationToken,
    running: &mut Vec<Running>,
    notices: &mut Vec<String>,
) -> Result<(), UpError> {
    // Every port is taken first: a member learns where the others listen before it starts.
    let mut listeners = Vec::with_capacity(MEMBERS.len());
    for (member, port) in MEMBERS.iter().zip(ports) {
        let addr = SocketAddr::new(host, *port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| UpError::Bind {
                service: member.name,
                addr,
                source,
            })?;
        listeners.push(listener);
    }
    let mut started = services::Started::default();
    for (member, listener) in MEMBERS.iter().zip(&listeners) {
        started.listens_on(
            member.name,
            listener.local_addr().map_err(|source| UpError::Bind {
                service: member.name,
                addr: SocketAddr::new(host, 0),
                source,
            })?,
        );
    }
    for (member, listener) in MEMBERS.iter().zip(listeners) {
        if shutdown.is_cancelled() {
            break;
        }
        let url = provision_member(database.admin_url(), member).await?;
        if let Some(def) = member.def {
            let (url, schema, migrations) = (url.clone(), def.schema, def.migrations);
            tokio::task::spawn_blocking(move || {
                ecrm_platform::db::migrate(&url, schema, migrations)
            })
            .await
            .map_err(|e| UpError::Serve(e.into()))?
            .map_err(|source| UpError::Migrate {
                service: member.name,
                source,
            })?;
        }
        let db = Db::connect(&url, member.schema, Default::default())
            .await
            .map_err(|source| UpError::Pool {
                service: member.name,
                source,
            })?;
        let options = ShutdownConfig {
            // Nothing routes to a local suite but its user: stop at once, still draining calls.
            grace: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
        };
        let context = ServiceContext::new(db, shutdown.child_token());
        let built = services::build(member, context, settings, &mut started).await?;
        // Said at once: a later member failing to start must not lose a credential shown once.
        if let Some(notice) = &built.notice {
            say!("{notice}");
        }
        notices.extend(built.notice);
        let server =
            RunningServer::start(listener, built.routes, options, shutdown.child_token()).await?;
        running.push(Running { member, server });
    }
    Ok(())
}

fn print_endpoints(database: &SuiteDatabase, running: &[Running], notices: &[String]) {
    say!("eCRM suite is up");
    say!("  {:<14} {}", "postgresql", database.describe());
    for member in running {
        say!(
            "  {:<14} {}",
            member.member.name,
            member.server.local_addr()
        );
    }
    if !notices.is_empty() {
        say!("(credentials above are not shown again)");
    }
    say!("ready: health and reflection on every endpoint; press Ctrl-C to stop");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_base_port_in_suite_order() {
        assert_eq!(ports(50051).unwrap(), [50051, 50052, 50053, 50054, 50055]);
        assert_eq!(ports(0).unwrap(), [0, 0, 0, 0, 0]);
        assert!(matches!(ports(65533), Err(UpError::BasePort(65533))));
        assert_eq!(outbound_http_port(50051).unwrap(), 50056);
        assert_eq!(outbound_http_port(0).unwrap(), 0);
        assert!(matches!(
            outbound_http_port(65531),
            Err(UpError::BasePort(65531))
        ));
    }
}
