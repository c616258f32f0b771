//! Email: an HTML mail per message, through a pool of SMTP connections to one relay.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::response::Response;
use lettre::{Address, Message};

use super::Outcome;
use super::config::DeliveryConfig;
use super::smtp::{Pool, Security, SendError, parse_relay, read_roots};
use crate::error::OutboundError;
use crate::gate::Cleared;

pub(super) struct Email {
    pool: Pool,
    from: Mailbox,
    /// The domain of the sender, which ends every Message-ID.
    domain: String,
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
        let tls = tls.build_rustls().map_err(|error| {
            OutboundError::invalid("--smtp-ca-file", format!("cannot set up TLS: {error}"))
        })?;
        let timeout = Duration::from_secs(config.smtp_timeout_secs);
        Ok(Some(Self {
            pool: Pool::new(relay, tls, timeout, config.smtp_pool_size),
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
        match self.pool.send(mail.envelope(), &mail.formatted()).await {
            Ok(response) => Outcome::Delivered {
                provider_id: queue_id(&response),
            },
            Err(SendError::TimedOut) => Outcome::Transient {
                detail: "smtp timed out".to_owned(),
            },
            Err(SendError::Unreachable(error)) => Outcome::Transient {
                detail: format!("smtp relay unreachable: {}", error.kind()),
            },
            Err(SendError::Smtp(error)) => classify(&error),
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
