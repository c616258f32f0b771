//! `ecrm up`: the whole suite in one process on this machine, on a private PostgreSQL unless a
//! database URL is given.

mod database;
mod demo;
mod keys;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use ecrm_crypto::Secret;
use ecrm_platform::config::TelemetryConfig;
use ecrm_platform::server::ServeError;
use ecrm_platform::tls::{Tls, TlsConfig};
use ecrm_platform::{DatabaseUrl, Telemetry};
use ecrm_suite::{FirstOperator, Member, OutboundOptions, Ports, Suite, SuiteError, SuiteOptions};
use tokio_util::sync::CancellationToken;

use self::database::SuiteDatabase;

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
///
///   ecrm up --tls-cert suite.pem --tls-key suite-key.pem --tls-ca ca.pem \
///       --tls-client-ca ca.pem
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
    /// Seed a realistic dataset on first start: customers with two years of bookings and
    /// browsing, consents of every kind, a partner airline's account (its credentials printed
    /// once) and open data subject requests. Later starts of the same data folder keep it.
    #[arg(long, env = "ECRM_DEMO")]
    demo: bool,
    /// How many customers `--demo` creates.
    #[arg(
        long,
        env = "ECRM_DEMO_CUSTOMERS",
        default_value_t = 10_000,
        requires = "demo"
    )]
    demo_customers: usize,
    #[command(flatten)]
    telemetry: TelemetryConfig,
    #[command(flatten)]
    tls: TlsConfig,
}

#[derive(Debug, thiserror::Error)]
enum UpError {
    #[error("--base-port {0} leaves no room for the {count} services below port 65535", count = Member::ALL.len())]
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
    Keys(#[from] keys::KeyError),
    #[error("cannot migrate the {service} schema")]
    Migrate {
        service: &'static str,
        #[source]
        source: ecrm_platform::db::MigrationError,
    },
    #[error(transparent)]
    Suite(SuiteError),
    #[error("cannot seed the demo data")]
    Demo(#[from] ecrm_suite::demo::DemoError),
}

/// The suite's errors as `ecrm up` words them: what the user can change is named by its flag.
impl From<SuiteError> for UpError {
    fn from(error: SuiteError) -> Self {
        match error {
            SuiteError::BasePort(base) => Self::BasePort(base),
            SuiteError::Bind {
                service,
                addr,
                source,
            } => Self::Bind {
                service,
                addr,
                source,
            },
            SuiteError::Pool { service, source } => Self::Pool { service, source },
            SuiteError::Migrate { service, source } => Self::Migrate { service, source },
            SuiteError::Serve(error) => Self::Serve(error),
            other => Self::Suite(other),
        }
    }
}

/// Runs `ecrm up` to completion.
pub fn run(args: UpArgs) -> ExitCode {
    let tls = match args.telemetry.validate().and_then(|()| args.tls.load()) {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
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
    let result = runtime.block_on(up(args, tls));
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", ecrm_platform::status::chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn up(args: UpArgs, tls: Tls) -> Result<(), UpError> {
    let outbound_http_port = outbound_http_port(args.base_port)?;
    // Held until we return: a second `ecrm up` on this folder would restart (and so take over)
    // the first one's PostgreSQL.
    let _owner = lock_data_dir(&args.data_dir)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(ecrm_platform::shutdown::cancel_on_signal(shutdown.clone()));

    let keys = keys::load(&args.data_dir)?;
    let outbound = OutboundOptions {
        delivery: keys::outbound_channels()?,
        http_addr: SocketAddr::new(args.host, outbound_http_port),
        public_url: std::env::var("ECRM_OUTBOUND_PUBLIC_URL")
            .ok()
            .filter(|url| !url.is_empty()),
    };
    let database =
        SuiteDatabase::open(args.database_url.clone(), &args.data_dir, args.pg_port).await?;
    let options = SuiteOptions {
        host: args.host,
        ports: Ports::Base(args.base_port),
        bootstrap_password: args.bootstrap_admin_password.clone(),
        outbound,
        // Said at once: a later member failing to start must not lose a credential shown once.
        on_first_operator: Some(Box::new(|first: &FirstOperator| {
            if first.generated {
                say!(
                    "first operator created, shown once: username {}, password {}",
                    first.username,
                    first.password.expose()
                );
            } else {
                say!(
                    "first operator created: {} (password from ECRM_BOOTSTRAP_ADMIN_PASSWORD)",
                    first.username
                );
            }
        })),
        shutdown: shutdown.clone(),
        tls,
        ..SuiteOptions::new(database.admin_url().clone(), keys)
    };
    let demo = args
        .demo
        .then(|| (args.data_dir.join(DEMO_MARKER), args.demo_customers));
    // Whatever happens while serving, a cluster we started is stopped before we return.
    let served = serve_suite(&database, options, demo, shutdown).await;
    let stopped = database.close().await;
    served?;
    stopped?;
    say!("stopped");
    Ok(())
}

/// In the data folder once `--demo` has seeded it.
const DEMO_MARKER: &str = "demo-seeded";

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

/// Outbound's one-click unsubscribe pages: the port after the last service's (50056). Checked
/// first, so it also checks that every service's port fits.
fn outbound_http_port(base: u16) -> Result<u16, UpError> {
    match base {
        0 => Ok(0),
        base => u16::try_from(Member::ALL.len())
            .ok()
            .and_then(|count| base.checked_add(count))
            .ok_or(UpError::BasePort(base)),
    }
}

async fn serve_suite(
    database: &SuiteDatabase,
    options: SuiteOptions,
    demo: Option<(PathBuf, usize)>,
    shutdown: CancellationToken,
) -> Result<(), UpError> {
    let suite = match Suite::start(options).await {
        Ok(suite) => suite,
        // Ctrl-C while starting: the members that had started are stopped.
        Err(SuiteError::Cancelled) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    if let Some((marker, customers)) = demo {
        let seeded = tokio::select! {
            seeded = demo::seed_once(&suite, &marker, customers) => seeded,
            () = shutdown.cancelled() => Ok(()),
        };
        if let Err(error) = seeded {
            let _ = suite.stop().await;
            return Err(error);
        }
    }
    print_endpoints(database, &suite);
    shutdown.cancelled().await;
    say!("stopping");
    suite.stop().await?;
    Ok(())
}

fn print_endpoints(database: &SuiteDatabase, suite: &Suite) {
    say!("eCRM suite is up");
    say!("  {:<14} {}", "postgresql", database.describe());
    for (member, addr) in suite.endpoints() {
        say!("  {:<14} {}", member.name(), addr);
    }
    let tls = match &suite.tls().server {
        Some(server) if server.is_mutual() => "mutual: client certificates of --tls-client-ca",
        Some(_) => "on (https://)",
        None => "off (http://)",
    };
    say!("  {:<14} {}", "tls", tls);
    if suite.first_operator().is_some() {
        say!("(credentials above are not shown again)");
    }
    say!("ready: health and reflection on every endpoint; press Ctrl-C to stop");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unsubscribe_pages_follow_the_last_service() {
        assert_eq!(outbound_http_port(50051).unwrap(), 50056);
        assert_eq!(outbound_http_port(0).unwrap(), 0);
        assert!(matches!(
            outbound_http_port(65531),
            Err(UpError::BasePort(65531))
        ));
        assert!(matches!(
            outbound_http_port(65533),
            Err(UpError::BasePort(65533))
        ));
    }
}
