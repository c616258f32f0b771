//! TLS and mutual TLS, configured the way a service binary is (`--tls-cert`, `--tls-key`,
//! `--tls-client-ca`, `--tls-ca` files), with certificates from CAs generated for the test.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::net::Ipv4Addr;
use std::path::Path;

use ecrm_auth::tls::ClientTls;
use ecrm_platform::config::ShutdownConfig;
use ecrm_platform::tls::{Tls, TlsConfig};
use ecrm_platform::{RunningServer, ServiceRoutes};
use ecrm_testkit::TestCa;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The suite's CA, a partner's CA, and a CA nobody listed, with their files in one folder.
struct Pki {
    dir: tempfile::TempDir,
    suite: TestCa,
    partner: TestCa,
    stranger: TestCa,
}

impl Pki {
    fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            suite: TestCa::new("ecrm suite CA").unwrap(),
            partner: TestCa::new("partner CA").unwrap(),
            stranger: TestCa::new("stranger CA").unwrap(),
        };
        pki.suite.write(pki.dir(), "suite-ca.pem").unwrap();
        pki.stranger.write(pki.dir(), "stranger-ca.pem").unwrap();
        // The bundle of CAs whose clients a service accepts: its own and the partner's.
        std::fs::write(
            pki.dir().join("client-cas.pem"),
            pki.suite.pem() + &pki.partner.pem(),
        )
        .unwrap();
        pki
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A service's flags: its certificate from the suite's CA, trusting the suite's CA, and
    /// requiring client certificates when `mutual`.
    fn service(&self, name: &str, mutual: bool) -> Tls {
        let files = self
            .suite
            .issue_loopback(name)
            .unwrap()
            .write(self.dir(), name)
            .unwrap();
        TlsConfig {
            tls_cert: Some(files.cert),
            tls_key: Some(files.key),
            tls_client_ca: mutual.then(|| self.dir().join("client-cas.pem")),
            tls_ca: Some(self.dir().join("suite-ca.pem")),
        }
        .load()
        .unwrap()
    }

    /// A client trusting `trusted` (a CA file of the folder), presenting a certificate of
    /// `issuer` when given.
    fn client(&self, trusted: &str, issuer: Option<&TestCa>, name: &str) -> ClientTls {
        let files = issuer.map(|ca| {
            ca.issue(name, &[])
                .unwrap()
                .write(self.dir(), name)
                .unwrap()
        });
        ClientTls::from_files(
            Some(&self.dir().join(trusted)),
            files.as_ref().map(|f| (f.cert.as_path(), f.key.as_path())),
        )
        .unwrap()
    }
}

async fn serve(tls: &Tls) -> RunningServer {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let routes = ServiceRoutes::unauthenticated().with_tls(tls.server.clone().unwrap());
    RunningServer::start(
        listener,
        routes,
        ShutdownConfig::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// The server's health over `scheme` as `client` connects: SERVING, or why the call failed.
async fn health(server: &RunningServer, scheme: &str, client: &ClientTls) -> Result<(), String> {
    let endpoint = Endpoint::from_shared(format!("{scheme}://{}", server.local_addr())).unwrap();
    let channel = client
        .secure(endpoint)
        .unwrap()
        .connect()
        .await
        .map_err(|error| format!("connect: {error:?}"))?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map_err(|status| format!("call: {status:?}"))?
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    Ok(())
}

#[tokio::test]
async fn mutual_tls_lets_in_only_clients_with_a_certificate_of_a_listed_ca() {
    let pki = Pki::new();
    let server = serve(&pki.service("profiles", true)).await;

    // Another service of the suite, with its own certificate (the flags a service reads).
    let peer = pki.service("consent", false);
    health(&server, "https", &peer.client).await.unwrap();
    // A partner, with a certificate of its own CA, which the bundle lists.
    let partner = pki.client("suite-ca.pem", Some(&pki.partner), "airline");
    health(&server, "https", &partner).await.unwrap();

    let no_certificate = pki.client("suite-ca.pem", None, "anonymous");
    let unknown_ca = pki.client("suite-ca.pem", Some(&pki.stranger), "stranger");
    let plaintext = ClientTls::default();
    let distrusting = pki.client("stranger-ca.pem", Some(&pki.partner), "airline-2");
    // Each refused for its own reason (the TLS alert the server sent, or the client's check);
    // plaintext meets a closed connection.
    for (who, scheme, client, reason) in [
        (
            "no client certificate",
            "https",
            &no_certificate,
            "CertificateRequired",
        ),
        ("an unlisted CA", "https", &unknown_ca, "UnknownCA"),
        ("plaintext", "http", &plaintext, ""),
        (
            "not trusting the server",
            "https",
            &distrusting,
            "UnknownIssuer",
        ),
    ] {
        let refused = health(&server, scheme, client).await.unwrap_err();
        assert!(refused.contains(reason), "{who}: {refused}");
    }

    // Refused handshakes leave the server serving.
    health(&server, "https", &partner).await.unwrap();
    server.shutdown();
    server.wait().await.unwrap();
}

#[tokio::test]
async fn tls_without_client_cas_takes_clients_without_a_certificate() {
    let pki = Pki::new();
    let server = serve(&pki.service("identity", false)).await;

    let no_certificate = pki.client("suite-ca.pem", None, "anonymous");
    health(&server, "https", &no_certificate).await.unwrap();
    let plaintext = ClientTls::default();
    assert!(health(&server, "http", &plaintext).await.is_err());
    server.shutdown();
    server.wait().await.unwrap();
}

#[test]
fn a_key_that_is_not_a_key_is_refused_naming_the_flag() {
    let pki = Pki::new();
    let files = pki
        .suite
        .issue_loopback("outbound")
        .unwrap()
        .write(pki.dir(), "outbound")
        .unwrap();
    let error = TlsConfig {
        tls_cert: Some(files.cert.clone()),
        tls_key: Some(files.cert),
        tls_client_ca: None,
        tls_ca: None,
    }
    .load()
    .unwrap_err();
    assert_eq!(error.flag, "--tls-key");
    assert!(error.reason.contains("no PEM private key"), "{error}");
}
