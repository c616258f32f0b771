//! The SMTP side of email: the relay --smtp-url names, and a pool of connections to it where
//! every send has a deadline.
//!
//! lettre's own pooled transport bounds only connecting; a send abandoned at a deadline would
//! hand its connection back to the pool mid-command, and the next message would read the late
//! reply as its own. Here a connection goes back to the pool only after a complete exchange;
//! one abandoned is closed.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::Semaphore;

use crate::error::OutboundError;

/// How long a connection may stay unused before it is closed rather than reused: relays
/// drop idle clients after a minute or a few.
/// How long a parked connection is reused without checking it still answers.
const FRESH: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Security {
    /// Plain text throughout: a relay on the same host or network only.
    None,
    /// STARTTLS when the relay offers it, plain text otherwise.
    Opportunistic,
    /// STARTTLS or no mail at all.
    Required,
    /// TLS from the first byte (`smtps://`).
    Wrapper,
}

/// The relay as --smtp-url describes it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Relay {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) security: Security,
    pub(super) credentials: Option<(String, String)>,
    pub(super) hello: Option<String>,
}

/// The relay of an `smtp://` or `smtps://` URL. Errors never quote the URL: it may hold a
/// password.
pub(super) fn parse_relay(value: &str) -> Result<Relay, OutboundError> {
    let invalid = |reason: &str| OutboundError::invalid("--smtp-url", reason);
    let url = url::Url::parse(value).map_err(|error| invalid(&format!("not a URL: {error}")))?;
    let host = match url.host() {
        Some(url::Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(invalid("the relay's host is missing")),
    };
    let mut tls = None;
    for (key, value) in url.query_pairs() {
        match (key.as_ref(), tls) {
            ("tls", None) => tls = Some(value.into_owned()),
            _ => {
                return Err(invalid(
                    "the only query parameter is tls=none|opportunistic|required",
                ));
            }
        }
    }
    let security = match (url.scheme(), tls.as_deref()) {
        ("smtp", None | Some("none")) => Security::None,
        ("smtp", Some("opportunistic")) => Security::Opportunistic,
        ("smtp", Some("required")) => Security::Required,
        ("smtps", None) => Security::Wrapper,
        ("smtp", Some(_)) => return Err(invalid("tls is none, opportunistic or required")),
        ("smtps", Some(_)) => return Err(invalid("smtps:// is TLS already: no tls parameter")),
        _ => return Err(invalid("an smtp:// or smtps:// URL")),
    };
    let port = url.port().unwrap_or(match security {
        Security::None => 25,
        Security::Opportunistic | Security::Required => 587,
        Security::Wrapper => 465,
    });
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| invalid("the credentials are not percent-encoded UTF-8"))
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, Some(password)) if !user.is_empty() => Some((decode(user)?, decode(password)?)),
        _ => return Err(invalid("credentials need both a user and a password")),
    };
    let hello = Some(url.path().trim_matches('/'))
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    Ok(Relay {
        host,
        port,
        security,
        credentials,
        hello,
    })
}

/// The certificates of a PEM file, to trust as roots; the file must hold at least one.
pub(super) fn read_roots(path: &std::path::Path) -> Result<Certificate, OutboundError> {
    let invalid = |reason: String| OutboundError::invalid("--smtp-ca-file", reason);
    let pem = std::fs::read(path).map_err(|error| invalid(format!("cannot read it: {error}")))?;
    let count = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("not PEM: {error}")))?
        .len();
    if count == 0 {
        return Err(invalid("holds no certificate".to_owned()));
    }
    Certificate::from_pem(&pem).map_err(|error| invalid(format!("not a certificate: {error}")))
}

/// Why a send did not get the relay's answer.
#[derive(Debug)]
pub(super) enum SendError {
    /// The relay answered no, or the connection failed.
    Smtp(SmtpError),
    /// No complete answer before the deadline.
    TimedOut,
    /// The relay could not be reached.
    Unreachable(std::io::Error),
}

/// Up to `size` connections to the relay, reused while they work.
pub(super) struct Pool {
    host: String,
    port: u16,
    security: Security,
    tls: TlsParameters,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
}

struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

impl Pool {
    /// `timeout` bounds connecting, and then each send; `tls` is used unless `relay` is plain.
    pub(super) fn new(relay: Relay, tls: TlsParameters, timeout: Duration, size: u32) -> Self {
        Self {
            host: relay.host,
            port: relay.port,
            security: relay.security,
            tls,
            credentials: relay
                .credentials
                .map(|(user, password)| Credentials::new(user, password)),
            hello: relay.hello.map_or_else(ClientId::default, ClientId::Domain),
            timeout,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(usize::try_from(size).unwrap_or(1).max(1)),
        }
    }

    /// Sends one mail on a pooled connection or a new one, within the deadline (waiting for a
    /// free connection does not count).
    pub(super) async fn send(
        &self,
        envelope: &Envelope,
        mail: &[u8],
    ) -> Result<Response, SendError> {
        // Never closed, so never an error.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SendError::TimedOut)?;
        tokio::time::timeout(self.timeout, self.exchange(envelope, mail))
            .await
            .unwrap_or(Err(SendError::TimedOut))
    }

    async fn exchange(&self, envelope: &Envelope, mail: &[u8]) -> Result<Response, SendError> {
        let mut connection = self.connection().await?;
        let sent = connection.send(envelope, mail).await;
        // lettre closes a connection on any refusal; only a clean one is kept.
        if sent.is_ok() && !connection.has_broken() {
            self.park(connection);
        }
        sent.map_err(SendError::Smtp)
    }

    /// A pooled connection that still answers, or a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, SendError> {
        while let Some(idle) = self.unpark() {
            let mut connection = idle.connection;
            let rested = idle.since.elapsed();
            // A connection parked a moment ago is taken as it is: probing it with NOOP would
            // add a round trip to every message under load.
            if rested < FRESH || (rested < IDLE_TIMEOUT && connection.test_connected().await) {
                return Ok(connection);
            }
            connection.abort().await;
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let mut connection = if self.security == Security::Wrapper {
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                Some(self.tls.clone()),
                None,
            )
            .await
            .map_err(SendError::Smtp)?
        } else {
            // Without Nagle's algorithm: lettre writes a message's end (`.`) apart from its
            // body, and the relay's delayed ACK of the body would hold that back ~40 ms.
            let stream = tokio::time::timeout(
                self.timeout,
                tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
            )
            .await
            .map_err(|_| SendError::TimedOut)?
            .map_err(SendError::Unreachable)?;
            stream.set_nodelay(true).map_err(SendError::Unreachable)?;
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                .await
                .map_err(SendError::Smtp)?
        };
        match self.security {
            Security::Required => connection
                .starttls(self.tls.clone(), &self.hello)
                .await
                .map_err(SendError::Smtp)?,
            Security::Opportunistic if connection.can_starttls() => {
                connection
                    .starttls(self.tls.clone(), &self.hello)
                    .await
                    .map_err(SendError::Smtp)?;
            }
            Security::None | Security::Opportunistic | Security::Wrapper => {}
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(SendError::Smtp)?;
        }
        Ok(connection)
    }

    fn park(&self, connection: AsyncSmtpConnection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Idle {
                connection,
                since: Instant::now(),
            });
    }

    fn unpark(&self) -> Option<Idle> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(url: &str) -> Relay {
        parse_relay(url).unwrap()
    }

    fn refused(url: &str) -> String {
        match parse_relay(url) {
            Err(OutboundError::InvalidArgument { field, reason }) => {
                assert_eq!(field, "--smtp-url");
                assert!(!reason.contains("hunter2"), "{reason}");
                reason
            }
            other => panic!("{url} gave {other:?}"),
        }
    }

    #[test]
    fn smtp_urls_name_host_port_tls_and_credentials() {
        assert_eq!(
            relay("smtp://127.0.0.1:2525"),
            Relay {
                host: "127.0.0.1".to_owned(),
                port: 2525,
                security: Security::None,
                credentials: None,
                hello: None,
            }
        );
        assert_eq!(
            relay("smtp://ops%40shop.example:p%2Fss@mail.example?tls=required"),
            Relay {
                host: "mail.example".to_owned(),
                port: 587,
                security: Security::Required,
                credentials: Some(("ops@shop.example".to_owned(), "p/ss".to_owned())),
                hello: None,
            }
        );
        let wrapped = relay("smtps://mail.example/client.shop.example");
        assert_eq!((wrapped.port, wrapped.security), (465, Security::Wrapper));
        assert_eq!(wrapped.hello.as_deref(), Some("client.shop.example"));
        assert_eq!(relay("smtp://mail.example").port, 25);
        assert_eq!(
            relay("smtp://mail.example?tls=none").security,
            Security::None
        );
        assert_eq!(
            relay("smtp://mail.example?tls=opportunistic").security,
            Security::Opportunistic
        );
        assert_eq!(relay("smtp://[::1]:25").host, "::1");
    }

    #[test]
    fn bad_smtp_urls_are_refused_without_quoting_them() {
        for bad in [
            "mail.example",
            "http://mail.example",
            "smtp://user:hunter2@mail.example?tls=maybe",
            "smtps://user:hunter2@mail.example?tls=required",
            "smtp://user:hunter2@mail.example?tls=required&tls=none",
            "smtp://user:hunter2@mail.example?pool=4",
            "smtp://:hunter2@mail.example",
            "smtp://user@mail.example",
            "smtp://user:%FF%FE@mail.example",
        ] {
            refused(bad);
        }
    }
}
