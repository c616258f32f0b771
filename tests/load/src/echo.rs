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
use ecrm_proto::ecrm::privacy::v1::DescribeResponse;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_testkit::{NoPersonalData, TestAuth, TokenSpec};
use prost::Message as _;
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
/// The variable a child echo finds the categories to describe in: the service's own answer,
/// protobuf-encoded and hex-written, so that both sides send the same bytes.
const DESCRIPTION: &str = "ECRM_LOAD_ECHO_DESCRIPTION";

/// Serves until killed, after printing its address and a token it accepts.
pub async fn serve(mode: EchoMode, telemetry: &TelemetryConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let described = match std::env::var(DESCRIPTION) {
        Ok(hex) => DescribeResponse::decode(from_hex(&hex)?.as_slice())?.categories,
        Err(_) => Vec::new(),
    };
    let handler = PersonalDataServer::new(NoPersonalData::new(AUDIENCE).describing(described));
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

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> anyhow::Result<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            let pair = hex.get(i..i + 2).context("odd hex length")?;
            Ok(u8::from_str_radix(pair, 16)?)
        })
        .collect()
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
    /// Starts this program again as `echo --mode <mode>`, logging as the services do, and
    /// answering `Describe` with `described`'s categories.
    pub async fn start(
        mode: EchoMode,
        log_filter: &str,
        described: &DescribeResponse,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mode_name = match mode {
            EchoMode::Bare => "bare",
            EchoMode::Stack => "stack",
            EchoMode::Auth => "auth",
        };
        let mut child = Command::new(exe)
            .args(["echo", "--mode", mode_name])
            .env("RUST_LOG", log_filter)
            .env(DESCRIPTION, to_hex(&described.encode_to_vec()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_reaches_the_echo_unchanged_and_bad_hex_is_refused() {
        let described = DescribeResponse {
            service: "profiles".to_owned(),
            categories: vec![ecrm_proto::ecrm::privacy::v1::DataCategory {
                key: "interactions".to_owned(),
                ..Default::default()
            }],
        };
        let hex = to_hex(&described.encode_to_vec());
        let back = DescribeResponse::decode(from_hex(&hex).unwrap().as_slice()).unwrap();
        assert_eq!(back, described);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }
}
