//! Serving a service's gRPC routes with health, reflection, request spans and a graceful
//! shutdown: NOT_SERVING first, then draining in-flight calls, then closing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use ecrm_auth::tls::ServerTls;
use ecrm_auth::{AuthLayer, Verifier};

use crate::config::ShutdownConfig;
use crate::propagation::server_span;
use crate::rate_limit::{RateLimitLayer, RateLimits};

/// The gRPC services one server exposes, with their names for health and reflection, and the
/// verifier that authenticates every call to them.
#[derive(Debug, Default)]
pub struct ServiceRoutes {
    builder: RoutesBuilder,
    names: Vec<&'static str>,
    auth: Option<Verifier>,
    limits: Option<RateLimits>,
    tls: Option<ServerTls>,
}

impl ServiceRoutes {
    /// Routes whose every call is authenticated and authorized by `verifier` against the
    /// suite's method table ([`ecrm_auth::methods`]): the way every service serves.
    /// Each principal's calls of the expensive methods are limited ([`RateLimits::suite`]).
    pub fn new(verifier: Verifier) -> Self {
        Self {
            auth: Some(verifier),
            limits: Some(RateLimits::suite()),
            ..Self::default()
        }
    }

    /// Replaces the per-principal rate limits.
    pub fn with_rate_limits(self, limits: RateLimits) -> Self {
        Self {
            limits: Some(limits),
            ..self
        }
    }

    /// Serves these routes over TLS only, with client certificates required when `tls` is
    /// mutual.
    pub fn with_tls(self, tls: ServerTls) -> Self {
        Self {
            tls: Some(tls),
            ..self
        }
    }

    /// Routes served to anyone, with no token checked: for servers that expose only health and
    /// reflection, and for tests of the serving machinery itself.
    pub fn unauthenticated() -> Self {
        Self::default()
    }

    /// Adds one generated tonic server, e.g. `routes.with(TokensServer::new(handler))`.
    pub fn with<S>(mut self, service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.builder.add_service(service);
        self.names.push(S::NAME);
        self
    }

    /// Fully-qualified names of the services added, e.g. `ecrm.identity.v1.Tokens`.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot read the listener address")]
    Listener(#[source] std::io::Error),
    #[error("grpc server failed")]
    Transport(#[from] tonic::transport::Error),
    #[error("grpc server task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// A server running on its own task.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    health: HealthReporter,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// Serves `routes` plus grpc.health.v1 and server reflection (v1 and v1alpha) on
    /// `listener` until `shutdown` is cancelled.
    pub async fn start(
        listener: TcpListener,
        routes: ServiceRoutes,
        options: ShutdownConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, ServeError> {
        let local_addr = listener.local_addr().map_err(ServeError::Listener)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        let served: Vec<&'static str> = routes.names().to_vec();
        for name in &served {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }

        let tls_mode = match &routes.tls {
            Some(tls) if tls.is_mutual() => "mutual",
            Some(_) => "server",
            None => "off",
        };
        let reflection_v1 = reflection_builder(&served).build_v1()?;
        let reflection_v1alpha = reflection_builder(&served).build_v1alpha()?;

        let guards = Guards {
            tls: routes.tls,
            auth: routes.auth.map(AuthLayer::new),
            limits: routes.limits.map(RateLimitLayer::new),
        };
        let mut builder = routes.builder;
        builder
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let routes: Routes = builder.routes().prepare();

        let task = tokio::spawn(serve_until_shutdown(
            listener,
            routes,
            guards,
            health.clone(),
            served,
            options,
            shutdown.clone(),
        ));
        tracing::info!(%local_addr, tls = tls_mode, "serving grpc");
        Ok(Self {
            local_addr,
            health,
            shutdown,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The health reporter, for a service that must report its own readiness.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Starts the graceful shutdown; [`RunningServer::wait`] tells when it is over.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> Result<(), ServeError> {
        self.task.await?
    }
}

/// Reflection advertises only what this server serves, though it can describe every contract.
fn reflection_builder(served: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ecrm_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(
            <tonic_health::pb::health_server::HealthServer<()> as NamedService>::NAME,
        );
    for name in served {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Connections accepted from `listener`, with Nagle's algorithm off: the builder's
/// `tcp_nodelay` applies only to listeners tonic binds itself, and without it small responses
/// wait for delayed ACKs (tens of milliseconds).
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// What prost says of bytes that are not the request message, as tonic words it in the
/// status' message (before percent-encoding, which turns spaces into `%20`).
const UNDECODABLE: &str = "failed%20to%20decode%20Protobuf%20message";

/// A request whose bytes do not decode is the caller's mistake: INVALID_ARGUMENT, with
/// prost's description (which names the message and field where it can), instead of tonic's
/// INTERNAL. INTERNAL then means a fault of the service alone, which monitoring can alert on.
fn undecodable_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let internal = headers
        .get("grpc-status")
        .is_some_and(|code| code.as_bytes() == b"13");
    let undecodable = headers
        .get("grpc-message")
        .is_some_and(|message| message.as_bytes().starts_with(UNDECODABLE.as_bytes()));
    if internal && undecodable {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from_static(INVALID_ARGUMENT),
        );
    }
    response
}

const INVALID_ARGUMENT: &str = "3";

/// What every connection and call passes before its handler.
struct Guards {
    tls: Option<ServerTls>,
    auth: Option<AuthLayer>,
    limits: Option<RateLimitLayer>,
}

async fn serve_until_shutdown(
    listener: TcpListener,
    routes: Routes,
    guards: Guards,
    health: HealthReporter,
    served: Vec<&'static str>,
    options: ShutdownConfig,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &guards.tls {
        builder = builder.tls_config(tls.config())?;
    }
    let server = builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .trace_fn(server_span)
        .layer(tower::util::MapResponseLayer::new(
            undecodable_is_invalid_argument,
        ))
        // Outermost first: the rate limits read the principal the auth layer found.
        .layer(tower::util::option_layer(guards.auth))
        .layer(tower::util::option_layer(guards.limits))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), async {
            let _ = stop_rx.await;
        });
    let mut server = std::pin::pin!(server);

    tokio::select! {
        result = &mut server => return result.map_err(ServeError::from),
        () = shutdown.cancelled() => {}
    }

    tracing::info!(grace = ?options.grace, "shutting down: health not serving");
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for name in &served {
        health
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
    // Keep serving through the grace period so load balancers see NOT_SERVING and move away.
    tokio::select! {
        result = &mut server => return result.map_err(ServeError::from),
        () = tokio::time::sleep(options.grace) => {}
    }

    tracing::info!(timeout = ?options.drain_timeout, "draining in-flight calls");
    let _ = stop_tx.send(());
    match tokio::time::timeout(options.drain_timeout, &mut server).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!("drain timeout reached, cutting remaining calls"),
    }
    tracing::info!("stopped");
    Ok(())
}
