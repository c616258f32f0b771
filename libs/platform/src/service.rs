//! What a service is to the platform, and `serve`, the one entry point of every service binary.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use diesel_migrations::EmbeddedMigrations;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use ecrm_auth::tls::ClientTls;
use tonic::transport::{Channel, Endpoint};

use crate::config::{ConfigError, DatabaseConfig, PlatformConfig};
use crate::db::{BLOCKING_THREAD_BUDGET, Db, DbError, MigrationError, ProvisionError};
use crate::server::{RunningServer, ServeError, ServiceRoutes};
use crate::telemetry::{Telemetry, TelemetryError};
use crate::tls::Tls;

/// The fixed facts about one service.
#[derive(Clone, Copy)]
pub struct ServiceDef {
    /// Short name, e.g. "identity"; also the OpenTelemetry service name's suffix.
    pub name: &'static str,
    /// The PostgreSQL schema the service owns.
    pub schema: &'static str,
    /// The port it listens on by default.
    pub default_port: u16,
    /// Its embedded migrations: `embed_migrations!` into a `static`, referenced here.
    pub migrations: &'static EmbeddedMigrations,
}

impl std::fmt::Debug for ServiceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceDef")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("default_port", &self.default_port)
            .finish_non_exhaustive()
    }
}

impl ServiceDef {
    /// The PostgreSQL role the service connects as: `ecrm_<schema>`.
    pub fn role(&self) -> String {
        format!("ecrm_{}", self.schema)
    }
}

/// Everything a service needs from the platform to build its handlers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceContext {
    pub db: Db,
    /// Cancelled when the process shuts down; background workers stop on it.
    pub shutdown: CancellationToken,
    /// How the service's calls to the others are secured (`https://` URLs).
    pub tls: ClientTls,
}

impl ServiceContext {
    pub fn new(db: Db, shutdown: CancellationToken) -> Self {
        Self {
            db,
            shutdown,
            tls: ClientTls::default(),
        }
    }

    /// This context, calling the other services with `tls`.
    #[must_use]
    pub fn with_tls(self, tls: ClientTls) -> Self {
        Self { tls, ..self }
    }

    /// A channel to another service, secured as its URL says, connecting on first use.
    pub fn connect(&self, endpoint: Endpoint) -> Result<Channel, ConfigError> {
        let endpoint = self.tls.secure(endpoint).map_err(|error| ConfigError {
            flag: "--tls-cert",
            env: "ECRM_TLS_CERT",
            reason: crate::status::chain(&error).to_string(),
        })?;
        Ok(endpoint.connect_lazy())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("cannot open the database pool")]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("the service failed to build")]
    Build(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Creates the role and schema when an admin URL is given, applies pending migrations, and
/// opens the pool: the database side of a service start.
pub async fn prepare_database(def: &ServiceDef, config: &DatabaseConfig) -> Result<Db, StartError> {
    let url = config.url.clone();
    let admin = config.admin_url.clone();
    let schema = def.schema;
    let migrations = def.migrations;
    tokio::task::spawn_blocking(move || -> Result<(), StartError> {
        if let Some(admin) = &admin {
            crate::db::provision(admin, &url, schema)?;
        }
        crate::db::migrate(&url, schema, migrations)?;
        Ok(())
    })
    .await
    .map_err(|e| StartError::Serve(e.into()))??;
    Ok(Db::connect(&config.url, def.schema, config.pool_options()).await?)
}

/// Runs a service binary to completion: validates config, starts telemetry, prepares the
/// database, builds the service with `build`, serves until SIGTERM or SIGINT, shuts down
/// gracefully and flushes traces. Every service's `main` is one call to this.
pub fn serve<F, Fut, E>(def: &'static ServiceDef, config: PlatformConfig, build: F) -> ExitCode
where
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = Result<ServiceRoutes, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    // The TLS files are read here, once: a bad one is a configuration error too.
    let tls = match config.validate().and_then(|()| config.tls.load()) {
        Ok(tls) => tls,
        Err(error) => {
            // No subscriber yet: the config error must still reach the operator.
            eprintln_error(&error);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREAD_BUDGET as usize)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln_error(&StartError::Runtime(error));
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the OTLP exporter's gRPC channel binds to the runtime it is built in.
    let telemetry = match runtime
        .block_on(async { Telemetry::init(&config.telemetry, &format!("ecrm-{}", def.name)) })
    {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln_error(&error);
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(def, config, tls, build));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %crate::status::chain(&error), "service stopped on error");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

async fn run<F, Fut, E>(
    def: &'static ServiceDef,
    config: PlatformConfig,
    tls: Tls,
    build: F,
) -> Result<(), StartError>
where
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = Result<ServiceRoutes, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::shutdown::cancel_on_signal(shutdown.clone()));
    let db = prepare_database(def, &config.database).await?;
    let context = ServiceContext::new(db, shutdown.clone()).with_tls(tls.client);
    let mut routes = build(context)
        .await
        .map_err(|e| StartError::Build(Box::new(e)))?;
    if let Some(server_tls) = tls.server {
        routes = routes.with_tls(server_tls);
    }
    let addr = config
        .listen
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, def.default_port)));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let server = RunningServer::start(listener, routes, config.shutdown, shutdown).await?;
    server.wait().await?;
    Ok(())
}

#[expect(
    clippy::print_stderr,
    reason = "reports a failure before logging exists"
)]
fn eprintln_error(error: &(dyn std::error::Error + 'static)) {
    eprintln!("error: {}", crate::status::chain(error));
}
