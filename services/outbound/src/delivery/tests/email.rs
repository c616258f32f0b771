//! Email through a real SMTP server.

use ecrm_testkit::SmtpSink;

use super::*;

#[tokio::test]
async fn a_mail_arrives_with_its_headers_and_html_body() {
    let sink = SmtpSink::start().await.unwrap();
    let channels = Channels::from_config(&email_config(sink.url())).unwrap();
    let marketing = email_message("ada@example.com", Some("https://shop.example/u/abc123"));
    let transactional = email_message("grace@example.com", None);

    for message in [&marketing, &transactional] {
        assert!(matches!(
            channels.deliver(message).await,
            Outcome::Delivered { .. }
        ));
    }
    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2);
    for (mail, message) in mails.iter().zip([&marketing, &transactional]) {
        assert_eq!(mail.mail_from, "news@shop.example");
        assert_eq!(mail.rcpt_to, vec![message.address().to_owned()]);
        assert_eq!(
            mail.header("From").as_deref(),
            Some("Shop <news@shop.example>")
        );
        assert_eq!(mail.header("To").as_deref(), Some(message.address()));
        assert_eq!(
            mail.header("Subject").as_deref(),
            Some("Votre commande est expédiée")
        );
        assert_eq!(
            mail.header("Message-ID"),
            Some(format!("<{}@shop.example>", message.message_id()))
        );
        assert!(mail.header("Date").is_some());
        // The MIME part ends with a line break of its own.
        assert_eq!(mail.html().unwrap().trim_end(), message.body());
    }
    assert_eq!(
        mails[0].headers("List-Unsubscribe"),
        vec!["<https://shop.example/u/abc123>".to_owned()]
    );
    assert_eq!(
        mails[0].headers("List-Unsubscribe-Post"),
        vec!["List-Unsubscribe=One-Click".to_owned()]
    );
    assert!(mails[1].headers("List-Unsubscribe").is_empty());
    assert!(mails[1].headers("List-Unsubscribe-Post").is_empty());
}

#[tokio::test]
async fn a_rejected_recipient_fails_and_is_suppressed() {
    let sink = SmtpSink::start().await.unwrap();
    sink.reject(
        "ada@example.com",
        550,
        "5.1.1 <ada@example.com>: user unknown",
        None,
    );
    let channels = Channels::from_config(&email_config(sink.url())).unwrap();
    assert_eq!(
        channels
            .deliver(&email_message("ada@example.com", None))
            .await,
        Outcome::Permanent {
            detail: "smtp 550 5.1.1".to_owned(),
            suppress: true
        }
    );
    // The pooled connection still serves the next message.
    assert!(matches!(
        channels
            .deliver(&email_message("grace@example.com", None))
            .await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_4xx_reply_pauses_the_channel_and_a_later_try_goes_through() {
    let sink = SmtpSink::start().await.unwrap();
    sink.reject("ada@example.com", 451, "4.7.1 slow down", Some(1));
    let channels = Channels::from_config(&email_config(sink.url())).unwrap();
    let message = email_message("ada@example.com", None);
    assert_eq!(
        channels.deliver(&message).await,
        Outcome::RateLimited {
            retry_after: None,
            detail: "smtp 451 4.7.1".to_owned()
        }
    );
    assert!(matches!(
        channels.deliver(&message).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
}

fn ca_file(sink: &SmtpSink) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), sink.ca_pem().unwrap()).unwrap();
    file
}

#[tokio::test]
async fn starttls_required_sends_over_tls_to_a_relay_trusted_by_its_ca_file() {
    let sink = SmtpSink::start_with_starttls(true).await.unwrap();
    let ca = ca_file(&sink);
    let url = format!("smtp://127.0.0.1:{}?tls=required", sink.port());
    let channels = Channels::from_config(&DeliveryConfig {
        smtp_ca_file: Some(ca.path().to_owned()),
        ..email_config(url.clone())
    })
    .unwrap();
    assert!(matches!(
        channels
            .deliver(&email_message("ada@example.com", None))
            .await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);

    // Without the CA the relay's certificate is not trusted: nothing is sent.
    let untrusted = Channels::from_config(&email_config(url)).unwrap();
    assert!(matches!(
        untrusted
            .deliver(&email_message("grace@example.com", None))
            .await,
        Outcome::Transient { .. }
    ));
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn a_relay_refusing_plain_text_fails_without_suppressing_the_recipient() {
    let sink = SmtpSink::start_with_starttls(true).await.unwrap();
    let channels = Channels::from_config(&email_config(sink.url())).unwrap();
    // 530: the relay wants STARTTLS first, a refusal of us and not of the address.
    assert!(matches!(
        channels
            .deliver(&email_message("ada@example.com", None))
            .await,
        Outcome::Permanent {
            detail,
            suppress: false,
        } if detail.starts_with("smtp 530")
    ));
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn a_relay_that_stops_answering_times_out_as_transient() {
    let sink = SmtpSink::start().await.unwrap();
    sink.hold(true);
    let channels = Channels::from_config(&DeliveryConfig {
        smtp_timeout_secs: 1,
        ..email_config(sink.url())
    })
    .unwrap();
    assert_eq!(
        channels
            .deliver(&email_message("ada@example.com", None))
            .await,
        Outcome::Transient {
            detail: "smtp timed out".to_owned()
        }
    );
    sink.hold(false);

    // The abandoned connection is not reused: each next message reads its own replies.
    sink.reject("grace@example.com", 550, "5.1.1 user unknown", None);
    assert_eq!(
        channels
            .deliver(&email_message("grace@example.com", None))
            .await,
        Outcome::Permanent {
            detail: "smtp 550 5.1.1".to_owned(),
            suppress: true
        }
    );
    assert!(matches!(
        channels
            .deliver(&email_message("bob@example.com", None))
            .await,
        Outcome::Delivered { .. }
    ));
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_to, vec!["bob@example.com".to_owned()]);
}

#[tokio::test]
async fn one_connection_carries_message_after_message() {
    let sink = SmtpSink::start().await.unwrap();
    let channels = Channels::from_config(&DeliveryConfig {
        smtp_pool_size: 1,
        ..email_config(sink.url())
    })
    .unwrap();
    let messages: Vec<Cleared> = (0..5)
        .map(|n| email_message(&format!("reader{n}@example.com"), None))
        .collect();
    // Concurrent sends wait for the one connection in turn.
    let outcomes = futures::future::join_all(messages.iter().map(|m| channels.deliver(m))).await;
    for outcome in outcomes {
        assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    }
    let mut ids: Vec<String> = sink
        .wait_for(5, WAIT)
        .await
        .iter()
        .map(|mail| mail.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    let mut sent: Vec<String> = messages
        .iter()
        .map(|m| format!("<{}@shop.example>", m.message_id()))
        .collect();
    sent.sort();
    assert_eq!(ids, sent);
}
