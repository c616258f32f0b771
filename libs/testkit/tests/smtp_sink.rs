//! The SMTP sink, spoken to over a plain SMTP conversation as a mail client would.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::sync::Arc;
use std::time::Duration;

use ecrm_testkit::SmtpSink;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

const WAIT: Duration = Duration::from_secs(5);

/// Multipart/alternative: quoted-printable text (soft line break, UTF-8 é), base64 HTML, a
/// folded subject, and a body line that needs dot-stuffing.
const NEWSLETTER: &str = "From: Shop <news@shop.example>\r\n\
To: Ana <ana@example.com>\r\n\
Subject: Your spring\r\n offers are here\r\n\
Message-ID: <spring-1@shop.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Bonjour Ana, voici vos offres pour l'=C3=A9t=C3=A9 et un lien tr=\r\n\
=C3=A8s long.\r\n\
.end of the line starts with a dot\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+Qm9uam91ciBBbmE8L3A+\r\n\
--b1--\r\n";

#[tokio::test]
async fn a_sent_message_is_stored_with_its_envelope_headers_and_decoded_text() {
    let sink = SmtpSink::start().await.unwrap();
    assert_eq!(sink.host(), "127.0.0.1");
    assert_eq!(sink.url(), format!("smtp://127.0.0.1:{}", sink.port()));

    let mut client = Client::connect(&sink).await;
    client.ehlo().await;
    client
        .send(
            "news@shop.example",
            &["ana@example.com", "bo@example.com"],
            NEWSLETTER,
        )
        .await;
    client.quit().await;

    let messages = sink.wait_for(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(sink.count(), 1);
    let mail = &messages[0];
    assert_eq!(mail.mail_from, "news@shop.example");
    assert_eq!(mail.rcpt_to, ["ana@example.com", "bo@example.com"]);
    assert_eq!(
        mail.data, NEWSLETTER,
        "the message is kept as sent, dots unstuffed"
    );
    assert_eq!(
        mail.header("subject").as_deref(),
        Some("Your spring offers are here")
    );
    assert_eq!(
        mail.header("MESSAGE-ID").as_deref(),
        Some("<spring-1@shop.example>")
    );
    assert_eq!(mail.header("X-Missing"), None);
    assert_eq!(
        mail.text(),
        "Bonjour Ana, voici vos offres pour l'été et un lien très long.\r\n\
         .end of the line starts with a dot",
        "the line break before a boundary belongs to the boundary"
    );
    assert_eq!(mail.html().as_deref(), Some("<p>Bonjour Ana</p>"));
}

#[tokio::test]
async fn a_single_part_base64_body_is_decoded() {
    let sink = SmtpSink::start().await.unwrap();
    let message = "Subject: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\n\
                   Content-Type: text/plain; charset=utf-8\r\n\
                   Content-Transfer-Encoding: base64\r\n\
                   \r\n\
                   SGVsbG8sIHfDtnJsZA==\r\n";
    let mut client = Client::connect(&sink).await;
    client.ehlo().await;
    client
        .send("a@shop.example", &["b@example.com"], message)
        .await;

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.header("Subject").as_deref(), Some("Résumé"));
    assert_eq!(mail.text().trim_end(), "Hello, wörld");
    assert_eq!(mail.html(), None);
}

#[tokio::test]
async fn a_reject_rule_answers_rcpt_with_its_code_until_its_times_run_out() {
    let sink = SmtpSink::start().await.unwrap();
    sink.reject("Bounce@Example.com", 550, "no such user", Some(2));
    sink.reject("full@example.com", 452, "mailbox full", None);

    let mut client = Client::connect(&sink).await;
    client.ehlo().await;
    client.command("MAIL FROM:<shop@shop.example>", 250).await;
    let reply = client.command("RCPT TO:<bounce@example.com>", 550).await;
    assert!(reply.contains("no such user"), "{reply}");
    client.command("RCPT TO:<bounce@example.com>", 550).await;
    client.command("RCPT TO:<bounce@example.com>", 250).await;
    for _ in 0..3 {
        let reply = client.command("RCPT TO:<full@example.com>", 452).await;
        assert!(reply.contains("mailbox full"), "{reply}");
    }
    client.command("RCPT TO:<ok@example.com>", 250).await;
    client.data(NEWSLETTER).await;

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.rcpt_to, ["bounce@example.com", "ok@example.com"]);
    assert_eq!(
        sink.rcpt_seen(),
        [
            "bounce@example.com",
            "bounce@example.com",
            "bounce@example.com",
            "full@example.com",
            "full@example.com",
            "full@example.com",
            "ok@example.com",
        ]
    );
}

#[tokio::test]
async fn a_wildcard_rule_rejects_every_address_until_cleared() {
    let sink = SmtpSink::start().await.unwrap();
    sink.reject("*", 421, "try again later", None);

    let mut client = Client::connect(&sink).await;
    client.ehlo().await;
    client.command("MAIL FROM:<shop@shop.example>", 250).await;
    client.command("RCPT TO:<a@example.com>", 421).await;
    client.command("RCPT TO:<b@example.com>", 421).await;
    sink.clear_rules();
    client.command("RCPT TO:<b@example.com>", 250).await;
}

#[tokio::test]
async fn adding_a_rule_does_not_renew_a_used_up_limited_one() {
    let sink = SmtpSink::start().await.unwrap();
    sink.reject("once@example.com", 550, "no", Some(1));

    let mut client = Client::connect(&sink).await;
    client.ehlo().await;
    client.command("MAIL FROM:<shop@shop.example>", 250).await;
    client.command("RCPT TO:<once@example.com>", 550).await;
    sink.reject("other@example.com", 550, "no", None);
    client.command("RCPT TO:<once@example.com>", 250).await;
    client.command("RCPT TO:<other@example.com>", 550).await;
    // Queued again by the test: counts anew.
    sink.reject("once@example.com", 551, "again", Some(1));
    client.command("RCPT TO:<once@example.com>", 551).await;
    client.command("RCPT TO:<once@example.com>", 250).await;
}

#[tokio::test]
async fn hold_blocks_rcpt_until_released() {
    let sink = SmtpSink::start().await.unwrap();
    let mut client = Client::connect(&sink).await;
    client.ehlo().await;
    client.command("MAIL FROM:<shop@shop.example>", 250).await;
    sink.hold(true);

    client.write("RCPT TO:<held@example.com>").await;
    wait_until(|| sink.rcpt_seen() == ["held@example.com"]).await;
    let early = tokio::time::timeout(Duration::from_millis(300), client.reply()).await;
    assert!(early.is_err(), "RCPT was answered while held: {early:?}");

    sink.hold(false);
    let (code, _) = tokio::time::timeout(WAIT, client.reply()).await.unwrap();
    assert_eq!(code, 250);
    client.data(NEWSLETTER).await;
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_sender_dropped_while_held_leaves_nothing_stored() {
    let sink = SmtpSink::start().await.unwrap();
    sink.hold(true);
    let mut client = Client::connect(&sink).await;
    client.ehlo().await;
    client.command("MAIL FROM:<shop@shop.example>", 250).await;
    client.write("RCPT TO:<held@example.com>").await;
    wait_until(|| !sink.rcpt_seen().is_empty()).await;
    drop(client);
    sink.hold(false);

    let mut next = Client::connect(&sink).await;
    next.ehlo().await;
    next.send("shop@shop.example", &["next@example.com"], NEWSLETTER)
        .await;
    let messages = sink.wait_for(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["next@example.com"]);
}

#[tokio::test]
async fn wait_for_returns_what_there_is_at_its_timeout() {
    let sink = SmtpSink::start().await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(
        sink.wait_for(1, Duration::from_millis(200))
            .await
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn a_counting_sink_keeps_only_recipients_and_message_ids() {
    let sink = SmtpSink::start_counting().await.unwrap();
    let mut client = Client::connect(&sink).await;
    client.ehlo().await;
    for i in 0..3 {
        let message = format!("Message-Id:\r\n <n{i}@shop.example>\r\nSubject: x\r\n\r\nbody\r\n");
        client
            .send(
                "shop@shop.example",
                &[&format!("c{i}@example.com")],
                &message,
            )
            .await;
    }
    client
        .send(
            "shop@shop.example",
            &["none@example.com"],
            "Subject: no id\r\n\r\nbody\r\n",
        )
        .await;

    wait_until(|| sink.count() == 4).await;
    let counted = sink.counted();
    let ids: Vec<&str> = counted.iter().map(|c| c.message_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "<n0@shop.example>",
            "<n1@shop.example>",
            "<n2@shop.example>",
            ""
        ]
    );
    assert_eq!(counted[1].rcpt_to, ["c1@example.com"]);
    assert!(sink.messages().iter().all(|m| m.data.is_empty()));
}

#[tokio::test]
async fn dropping_the_sink_stops_its_server() {
    let sink = SmtpSink::start().await.unwrap();
    let port = sink.port();
    drop(sink);
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still listening on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn required_starttls_refuses_plain_mail_and_accepts_it_over_tls() {
    let sink = SmtpSink::start_with_starttls(true).await.unwrap();
    let mut plain = Client::connect(&sink).await;
    let ehlo = plain.ehlo().await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    plain.command("MAIL FROM:<shop@shop.example>", 530).await;

    // Both names the certificate covers verify against its own PEM.
    for name in ["localhost", "127.0.0.1"] {
        let mut client = Client::connect(&sink).await;
        client.ehlo().await;
        client.command("STARTTLS", 220).await;
        let mut tls = client.over_tls(&sink, name).await;
        tls.ehlo().await;
        tls.send("shop@shop.example", &["tls@example.com"], NEWSLETTER)
            .await;
        tls.quit().await;
    }
    assert_eq!(sink.wait_for(2, WAIT).await.len(), 2);
}

#[tokio::test]
async fn optional_starttls_is_offered_and_plain_mail_still_accepted() {
    let sink = SmtpSink::start_with_starttls(false).await.unwrap();
    assert!(sink.ca_pem().unwrap().contains("BEGIN CERTIFICATE"));
    let mut client = Client::connect(&sink).await;
    let ehlo = client.ehlo().await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    client
        .send("shop@shop.example", &["plain@example.com"], NEWSLETTER)
        .await;
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);

    let plain = SmtpSink::start().await.unwrap();
    assert_eq!(plain.ca_pem(), None);
    let mut client = Client::connect(&plain).await;
    assert!(!client.ehlo().await.contains("STARTTLS"));
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Just enough of an SMTP client to drive the sink one command at a time.
struct Client<S> {
    stream: BufReader<S>,
}

impl Client<TcpStream> {
    async fn connect(sink: &SmtpSink) -> Self {
        let stream = TcpStream::connect((sink.host(), sink.port()))
            .await
            .unwrap();
        let mut client = Client {
            stream: BufReader::new(stream),
        };
        let (code, _) = client.reply().await;
        assert_eq!(code, 220);
        client
    }

    /// This connection, after a 220 to STARTTLS, wrapped in TLS for `name`, trusting only the
    /// sink's certificate.
    async fn over_tls(
        self,
        sink: &SmtpSink,
        name: &str,
    ) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(sink.ca_pem().unwrap().as_bytes()).unwrap();
        roots.add(cert).unwrap();
        let config =
            ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        assert!(self.stream.buffer().is_empty());
        let tcp = self.stream.into_inner();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        Client {
            stream: BufReader::new(tls),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn write(&mut self, line: &str) {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// One reply, all its lines: its code and text.
    async fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            assert!(
                self.stream.read_line(&mut line).await.unwrap() > 0,
                "connection closed"
            );
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return (line[..3].parse().unwrap(), text);
            }
        }
    }

    async fn command(&mut self, line: &str, expected: u16) -> String {
        self.write(line).await;
        let (code, text) = self.reply().await;
        assert_eq!(code, expected, "{line} -> {text}");
        text
    }

    async fn ehlo(&mut self) -> String {
        self.command("EHLO client.example", 250).await
    }

    async fn data(&mut self, message: &str) {
        self.command("DATA", 354).await;
        let mut stuffed = String::new();
        for line in message.split_inclusive("\r\n") {
            if line.starts_with('.') {
                stuffed.push('.');
            }
            stuffed.push_str(line);
        }
        stuffed.push_str(".\r\n");
        self.stream
            .get_mut()
            .write_all(stuffed.as_bytes())
            .await
            .unwrap();
        let (code, text) = self.reply().await;
        assert_eq!(code, 250, "{text}");
    }

    async fn send(&mut self, from: &str, to: &[&str], message: &str) {
        self.command(&format!("MAIL FROM:<{from}>"), 250).await;
        for rcpt in to {
            self.command(&format!("RCPT TO:<{rcpt}>"), 250).await;
        }
        self.data(message).await;
    }

    async fn quit(&mut self) {
        self.command("QUIT", 221).await;
    }
}
