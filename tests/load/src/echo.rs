//! The baselines of the no-database RPC: `PersonalData/Describe` answered by a handler that
//! holds nothing, in a process of its own like a service, served three ways: by bare tonic,
//! by the platform's server (request spans, health, reflection) without the auth layer, and
//! with it. The parent reads `<address> <token>` from the child's first line of output.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use ecrm_auth::{Scope, Scopes};
use ecrm_platform::config::{ShutdownConfig, TelemetryConfig};
use ecrm_platform::server::{RunningServer, ServiceRoutes};
use ecrm_platform::telemetry::Telemetry;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_testkit::{NoPersonalData, TestAuth, TokenSpec};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How the echo is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EchoMode {
    /// `tonic::transport::Server` and the handler, nothing else.
    Bare,
    /// The platform's server, as every service serves, with no auth layer.
    Stack,
    /// The platform's server with the auth layer, verifying an Ed25519 token on every call.
    Auth,
}

/// The audience of the echo's tokens.
const AUDIENCE: &str = "echo";

/// Serves until killed, after printing its address and a token it accepts.
pub async fn serve(mode: EchoMode, telemetry: &TelemetryConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let handler = PersonalDataServer::new(NoPersonalData::new(AUDIENCE));
    let auth = TestAuth::new();
    let token = auth.token(&TokenSpec::internal(
        AUDIENCE,
        Scopes::empty().with(Scope::PrivacyExecute),
    ));
    let shutdown = CancellationToken::new();
    match mode {
        EchoMode::Bare => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let server = tonic::transport::Server::builder()
                .add_service(handler)
                .serve_with_incoming(incoming);
            announce(addr, &token);
            server.await?;
        }
        EchoMode::Stack | EchoMode::Auth => {
            // As `ecrm_platform::serve` sets a service's process up.
            let _telemetry = Telemetry::init(telemetry, "ecrm-load-echo")?;
            let routes = if mode == EchoMode::Auth {
                ServiceRoutes::new(auth.verifier(AUDIENCE).await)
            } else {
                ServiceRoutes::unauthenticated()
            };
            let server = RunningServer::start(
                listener,
                routes.with(handler),
                ShutdownConfig::default(),
                shutdown.clone(),
            )
            .await?;
            announce(addr, &token);
            server.wait().await?;
        }
    }
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the parent reads the address from the child's output"
)]
fn announce(addr: SocketAddr, token: &str) {
    println!("{addr} {token}");
}

/// An echo server running in a child process.
pub struct EchoServer {
    _child: Child,
    pub url: String,
    pub token: String,
}

impl EchoServer {
    /// Starts this program again as `echo --mode <mode>`, logging as the services do.
    pub async fn start(mode: EchoMode, log_filter: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mode_name = match mode {
            EchoMode::Bare => "bare",
            EchoMode::Stack => "stack",
            EchoMode::Auth => "auth",
        };
        let mut child = Command::new(exe)
            .args(["echo", "--mode", mode_name])
            .env("RUST_LOG", log_filter)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the echo server")?;
        let stdout = child
            .stdout
            .take()
            .context("no output from the echo server")?;
        let line = BufReader::new(stdout)
            .lines()
            .next_line()
            .await?
            .context("the echo server exited before it listened")?;
        let (addr, token) = line
            .split_once(' ')
            .context("the echo server's first line is not `<address> <token>`")?;
        Ok(Self {
            _child: child,
            url: format!("http://{addr}"),
            token: token.to_owned(),
        })
    }
}
