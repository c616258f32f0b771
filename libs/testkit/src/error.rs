//! What can keep the harness from giving a test its database or server.

/// A failure of the test harness itself (not of the code under test).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ECRM_TEST_DATABASE_URL is not a usable postgres url")]
    BadUrl(#[source] ecrm_platform::db::DatabaseUrlError),
    #[error("no postgresql for tests: set ECRM_TEST_DATABASE_URL or install the server binaries")]
    NoServer(#[source] ecrm_localpg::Error),
    /// An earlier test of this process already failed to find a server; this is its reason.
    #[error("no postgresql for tests: {reason}")]
    Unavailable { reason: String },
    #[error("refusing to use {path} for the test cluster: {reason}")]
    UnsafeFolder {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot connect to the test postgresql")]
    Connect(#[source] diesel::ConnectionError),
    #[error("test database statement failed: {context}")]
    Query {
        context: String,
        #[source]
        source: diesel::result::Error,
    },
    #[error(transparent)]
    Provision(#[from] ecrm_platform::db::ProvisionError),
    #[error(transparent)]
    Migration(#[from] ecrm_platform::db::MigrationError),
    #[error(transparent)]
    Db(#[from] ecrm_platform::DbError),
    #[error(transparent)]
    Serve(#[from] ecrm_platform::server::ServeError),
    #[error("cannot bind 127.0.0.1:0")]
    Bind(#[source] std::io::Error),
    #[error("cannot connect to the test server at {addr}")]
    Channel {
        addr: std::net::SocketAddr,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot run the migrations")]
    Migrations(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the service failed to build")]
    Build(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("harness task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error(
        "no python3 that can import aiosmtpd for the smtp sink: install Debian's python3-aiosmtpd"
    )]
    NoAiosmtpd,
    #[error("smtp sink: cannot {context}")]
    SinkIo {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the smtp sink did not start: {reason}")]
    SinkStart { reason: String },
    #[error("cannot make a certificate")]
    Certificate(#[source] rcgen::Error),
    #[error("cannot write {}", path.display())]
    WriteFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn sink_io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::SinkIo { context, source }
    }

    pub(crate) fn query(context: impl Into<String>) -> impl FnOnce(diesel::result::Error) -> Self {
        let context = context.into();
        move |source| Self::Query { context, source }
    }
}
