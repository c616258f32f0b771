//! Email: an HTML mail per message, through a pool of SMTP connections to one relay.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::{Error as SmtpError, PoolConfig};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::Outcome;
use super::config::DeliveryConfig;
use crate::error::OutboundError;
use crate::gate::Cleared;

pub(super) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of the sender, which ends every Message-ID.
    domain: String,
}

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
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
struct Relay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, String)>,
    hello: Option<String>,
}

impl Email {
    /// The channel when --smtp-url is set, checking the flags that go with it.
    pub(super) fn from_config(config: &DeliveryConfig) -> Result<Option<Self>, OutboundError> {
        let Some(url) = &config.smtp_url else {
            return Ok(None);
        };
        let relay = parse_relay(url.expose())?;
        let from = config
            .email_from
            .as_deref()
            .ok_or_else(|| OutboundError::invalid("--email-from", "required with --smtp-url"))?
            .parse::<Mailbox>()
            .map_err(|_| {
                OutboundError::invalid(
                    "--email-from",
                    "an address such as \"Shop <news@shop.example>\"",
                )
            })?;
        let domain = from.email.domain().to_owned();

        let mut tls = TlsParameters::builder(relay.host.clone());
        if let Some(path) = &config.smtp_ca_file {
            if relay.security == Security::None {
                return Err(OutboundError::invalid(
                    "--smtp-ca-file",
                    "--smtp-url uses no TLS (add ?tls=required, or use smtps://)",
                ));
            }
            tls = tls.add_root_certificate(read_roots(path)?);
        }
        let tls = || {
            tls.clone().build_rustls().map_err(|error| {
                OutboundError::invalid("--smtp-ca-file", format!("cannot set up TLS: {error}"))
            })
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&relay.host)
            .port(relay.port)
            .timeout(Some(Duration::from_secs(config.smtp_timeout_secs)))
            .pool_config(PoolConfig::new().max_size(config.smtp_pool_size))
            .tls(match relay.security {
                Security::None => Tls::None,
                Security::Opportunistic => Tls::Opportunistic(tls()?),
                Security::Required => Tls::Required(tls()?),
                Security::Wrapper => Tls::Wrapper(tls()?),
            });
        if let Some((user, password)) = relay.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        if let Some(hello) = relay.hello {
            builder = builder.hello_name(ClientId::Domain(hello));
        }
        Ok(Some(Self {
            transport: builder.build(),
            from,
            domain,
        }))
    }

    pub(super) async fn send(&self, message: &Cleared) -> Outcome {
        let Ok(to) = message.address().parse::<Address>() else {
            return Outcome::Permanent {
                detail: "not an email address".to_owned(),
                suppress: true,
            };
        };
        let mail = match self.mail(message, to) {
            Ok(mail) => mail,
            Err(error) => {
                return Outcome::Permanent {
                    detail: format!("cannot build the mail: {error}"),
                    suppress: false,
                };
            }
        };
        match self.transport.send(mail).await {
            Ok(response) => Outcome::Delivered {
                provider_id: queue_id(&response),
            },
            Err(error) => classify(&error),
        }
    }

    fn mail(&self, message: &Cleared, to: Address) -> Result<Message, lettre::error::Error> {
        let mut mail = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(message.subject())
            // Stable across attempts, so a relay or an inbox can drop a repeat.
            .message_id(Some(format!("<{}@{}>", message.message_id(), self.domain)));
        if let Some(url) = message.unsubscribe_url() {
            // RFC 8058 one-click unsubscription: mailbox providers POST to the URL themselves.
            mail = mail
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        mail.singlepart(SinglePart::html(message.body().to_owned()))
    }
}

/// The relay of an `smtp://` or `smtps://` URL. Errors never quote the URL: it may hold a
/// password.
fn parse_relay(value: &str) -> Result<Relay, OutboundError> {
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
fn read_roots(path: &std::path::Path) -> Result<Certificate, OutboundError> {
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

/// What an SMTP failure means for the message.
fn classify(error: &SmtpError) -> Outcome {
    if let Some(code) = error.status() {
        let text = std::error::Error::source(error).map(ToString::to_string);
        return classify_reply(u16::from(code), text.as_deref());
    }
    let detail = if error.is_timeout() {
        "smtp timed out".to_owned()
    } else if error.is_response() {
        "smtp reply unreadable".to_owned()
    } else {
        format!("smtp {error}")
    };
    Outcome::Transient { detail }
}

/// What a negative reply means: 4xx asks to slow down, 5xx refuses the message. The detail
/// keeps the codes and never the relay's text, which often quotes the address.
fn classify_reply(code: u16, text: Option<&str>) -> Outcome {
    let enhanced = text
        .and_then(enhanced_status)
        .map(|status| format!(" {status}"))
        .unwrap_or_default();
    let detail = format!("smtp {code}{enhanced}");
    if code < 500 {
        return Outcome::RateLimited {
            retry_after: None,
            detail,
        };
    }
    Outcome::Permanent {
        suppress: !about_us(code, text),
        detail,
    }
}

/// Whether a 5xx refuses us (our credentials, our sender) rather than the recipient, so the
/// recipient's address must not be suppressed for it: the authentication replies of RFC 4954
/// (530, 534, 535, 538), and the enhanced statuses of a bad sender (x.1.7, x.1.8) or bad
/// credentials (x.7.8).
fn about_us(code: u16, text: Option<&str>) -> bool {
    if matches!(code, 530 | 534 | 535 | 538) {
        return true;
    }
    text.and_then(enhanced_status).is_some_and(|status| {
        let detail = status.split_once('.').map_or("", |(_, rest)| rest);
        matches!(detail, "1.7" | "1.8" | "7.8")
    })
}

/// The RFC 3463 enhanced status that starts a reply's text (`5.1.1`), if it has one.
fn enhanced_status(text: &str) -> Option<&str> {
    let first = text.split_whitespace().next()?;
    let mut parts = first.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let number = |part: &str, max: usize| {
        !part.is_empty() && part.len() <= max && part.bytes().all(|b| b.is_ascii_digit())
    };
    (matches!(class, "2" | "4" | "5")
        && number(subject, 3)
        && number(detail, 3)
        && parts.next().is_none())
    .then_some(first)
}

/// The relay's queue id from its reply, in the forms relays give it: `queued as <id>`
/// (Postfix and most others) or `id=<id>` (Exim).
fn queue_id(response: &Response) -> Option<String> {
    let text = response.message().collect::<Vec<_>>().join(" ");
    let words: Vec<&str> = text.split_whitespace().collect();
    let id = words
        .windows(3)
        .find(|w| w[0].eq_ignore_ascii_case("queued") && w[1].eq_ignore_ascii_case("as"))
        .map(|w| w[2])
        .or_else(|| words.iter().find_map(|word| word.strip_prefix("id=")))?;
    let id = id.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!id.is_empty()).then(|| id.to_owned())
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

    #[test]
    fn a_4xx_reply_asks_to_slow_down() {
        assert_eq!(
            classify_reply(451, Some("4.3.0 Try again later")),
            Outcome::RateLimited {
                retry_after: None,
                detail: "smtp 451 4.3.0".to_owned()
            }
        );
        assert_eq!(
            classify_reply(421, Some("Service not available")),
            Outcome::RateLimited {
                retry_after: None,
                detail: "smtp 421".to_owned()
            }
        );
    }

    #[test]
    fn a_5xx_reply_suppresses_the_address_unless_it_is_about_us() {
        assert_eq!(
            classify_reply(
                550,
                Some("5.1.1 <ada@example.com>: Recipient address rejected")
            ),
            Outcome::Permanent {
                detail: "smtp 550 5.1.1".to_owned(),
                suppress: true
            }
        );
        assert_eq!(
            classify_reply(554, Some("Transaction failed")),
            Outcome::Permanent {
                detail: "smtp 554".to_owned(),
                suppress: true
            }
        );
        for (code, text) in [
            (535, "5.7.8 Authentication credentials invalid"),
            (535, "Authentication failed"),
            (530, "5.7.0 Authentication required"),
            (553, "5.1.8 <news@shop.example>: Sender address rejected"),
            (550, "5.1.7 Bad sender address syntax"),
        ] {
            assert!(
                matches!(
                    classify_reply(code, Some(text)),
                    Outcome::Permanent {
                        suppress: false,
                        ..
                    }
                ),
                "{code} {text}"
            );
        }
    }

    #[test]
    fn enhanced_statuses_are_read_only_when_well_formed() {
        assert_eq!(enhanced_status("5.1.1 User unknown"), Some("5.1.1"));
        assert_eq!(enhanced_status("4.7.650 throttled"), Some("4.7.650"));
        for none in [
            "",
            "User unknown",
            "5.1 x",
            "6.1.1 x",
            "5.1.1.1 x",
            "5.a.1 x",
            "5.1.1234 x",
        ] {
            assert_eq!(enhanced_status(none), None, "{none}");
        }
    }

    fn ok(lines: &[&str]) -> Response {
        use lettre::transport::smtp::response::{Category, Code, Detail, Severity};
        Response::new(
            Code::new(
                Severity::PositiveCompletion,
                Category::MailSystem,
                Detail::Zero,
            ),
            lines.iter().map(|line| (*line).to_owned()).collect(),
        )
    }

    #[test]
    fn the_queue_id_is_read_from_the_reply() {
        assert_eq!(
            queue_id(&ok(&["2.0.0 Ok: queued as 4F3A21C0B2"])),
            Some("4F3A21C0B2".to_owned())
        );
        assert_eq!(
            queue_id(&ok(&["OK id=1tQmzX-0004Ab-2k"])),
            Some("1tQmzX-0004Ab-2k".to_owned())
        );
        assert_eq!(queue_id(&ok(&["OK"])), None);
        assert_eq!(queue_id(&ok(&["2.0.0 Ok: queued as"])), None);
    }
}

#[cfg(test)]
mod mail_tests {
    use ecrm_crypto::Secret;

    use super::*;
    use crate::templates::domain::Channel;

    async fn email() -> Email {
        Email::from_config(&DeliveryConfig {
            smtp_url: Some(Secret::new("smtp://127.0.0.1:25".to_owned())),
            email_from: Some("Shop <news@shop.example>".to_owned()),
            ..DeliveryConfig::default()
        })
        .unwrap()
        .unwrap()
    }

    fn formatted(email: &Email, message: &Cleared) -> String {
        let to = message.address().parse().unwrap();
        String::from_utf8(email.mail(message, to).unwrap().formatted()).unwrap()
    }

    /// A header's value, folded lines joined.
    fn header(mail: &str, name: &str) -> Option<String> {
        let head = mail.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ");
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    #[tokio::test]
    async fn a_long_unsubscribe_url_stays_one_unbroken_uri() {
        let url = format!(
            "https://shop.example/unsubscribe?token={}",
            "a1B2c3D4".repeat(40)
        );
        let message = Cleared::for_channel_tests(
            Channel::Email,
            "ada@example.com",
            "Votre commande été expédiée",
            "<p>Bonjour</p>",
            Some(&url),
        );
        let mail = formatted(&email().await, &message);
        assert_eq!(header(&mail, "List-Unsubscribe"), Some(format!("<{url}>")));
        assert_eq!(
            header(&mail, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert_eq!(
            header(&mail, "Message-ID"),
            Some(format!("<{}@shop.example>", message.message_id()))
        );
        assert!(header(&mail, "Date").is_some());
        assert!(
            header(&mail, "Content-Type")
                .unwrap()
                .starts_with("text/html; charset=utf-8")
        );
    }
}
