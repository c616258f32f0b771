//! Services started in-process on 127.0.0.1:0, with a connected channel for typed clients.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ecrm_platform::config::ShutdownConfig;
use ecrm_platform::{RunningServer, ServiceContext, ServiceDef, ServiceRoutes};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::database::TestDatabase;
use crate::error::Error;

/// A server running in the test's process, stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    channel: Channel,
    shutdown: CancellationToken,
    running: Option<RunningServer>,
}

/// Serves `routes` (plus health and reflection, as every service does) on an ephemeral port
/// with no shutdown grace, and connects a channel to it.
pub async fn start_server(routes: ServiceRoutes) -> Result<TestServer, Error> {
    start_server_with(routes, CancellationToken::new()).await
}

/// Builds the service `def` on `database` as its `main` would (a pool pinned to its schema and
/// role), then serves it like [`start_server`].
pub async fn start_service<F, Fut, E>(
    def: &'static ServiceDef,
    database: &TestDatabase,
    build: F,
) -> Result<TestServer, Error>
where
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = Result<ServiceRoutes, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let shutdown = CancellationToken::new();
    let db = database.db(def).await?;
    let routes = build(ServiceContext::new(db, shutdown.clone()))
        .await
        .map_err(|e| Error::Build(Box::new(e)))?;
    start_server_with(routes, shutdown).await
}

async fn start_server_with(
    routes: ServiceRoutes,
    shutdown: CancellationToken,
) -> Result<TestServer, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(Error::Bind)?;
    let options = ShutdownConfig {
        grace: Duration::ZERO,
        drain_timeout: Duration::from_secs(5),
    };
    let running = RunningServer::start(listener, routes, options, shutdown.clone()).await?;
    let addr = running.local_addr();
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map(|endpoint| endpoint.connect_timeout(Duration::from_secs(5)))
        .map_err(|source| Error::Channel { addr, source })?
        .connect()
        .await
        .map_err(|source| Error::Channel { addr, source })?;
    Ok(TestServer {
        addr,
        channel,
        shutdown,
        running: Some(running),
    })
}

impl TestServer {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connected channel; cheap to clone.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A typed client on the server's channel, e.g. `server.client(HealthClient::new)`.
    pub fn client<C>(&self, make: impl FnOnce(Channel) -> C) -> C {
        make(self.channel())
    }

    /// The server's health reporter, to change what it reports.
    pub fn health(&self) -> Option<&tonic_health::server::HealthReporter> {
        self.running.as_ref().map(RunningServer::health)
    }

    /// Shuts down gracefully and waits until the server has stopped.
    pub async fn stop(mut self) -> Result<(), Error> {
        self.shutdown.cancel();
        match self.running.take() {
            Some(running) => Ok(running.wait().await?),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
