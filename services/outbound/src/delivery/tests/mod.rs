//! The channels against real servers on this machine (the test kit's SMTP sink, aiosmtpd, and
//! its HTTP sink), and their configuration.

mod config;
mod email;
mod http;

use std::time::Duration;

use ecrm_crypto::Secret;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

fn config() -> DeliveryConfig {
    DeliveryConfig::default()
}

fn refused_flag(config: &DeliveryConfig) -> String {
    match Channels::from_config(config) {
        Err(OutboundError::InvalidArgument { field, .. }) => field,
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(channels) => panic!("accepted {channels:?}"),
    }
}

/// A port on this machine nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

fn email_config(url: String) -> DeliveryConfig {
    DeliveryConfig {
        smtp_url: Some(Secret::new(url)),
        email_from: Some("Shop <news@shop.example>".to_owned()),
        smtp_timeout_secs: 5,
        ..config()
    }
}

fn sms_config(url: String) -> DeliveryConfig {
    DeliveryConfig {
        sms_url: Some(url),
        sms_token: Some(Secret::new("sms-token-1".to_owned())),
        sms_sender: Some("SHOP".to_owned()),
        http_timeout_secs: 5,
        ..config()
    }
}

const WEBHOOK_SECRET: &str = "whsec-0123456789abcdef";

fn webhook_config(url: String) -> DeliveryConfig {
    DeliveryConfig {
        webhook_url: Some(url),
        webhook_secret: Some(Secret::new(WEBHOOK_SECRET.to_owned())),
        http_timeout_secs: 5,
        ..config()
    }
}

fn email_message(address: &str, unsubscribe_url: Option<&str>) -> Cleared {
    Cleared::for_channel_tests(
        Channel::Email,
        address,
        "Votre commande est expédiée",
        "<p>Bonjour Ada, votre commande <b>n°42</b> est partie.</p>",
        unsubscribe_url,
    )
}

#[tokio::test]
async fn a_relay_or_provider_not_listening_is_transient() {
    let port = closed_port().await;
    let cases = [
        (
            email_config(format!("smtp://127.0.0.1:{port}")),
            Cleared::for_channel_tests(Channel::Email, "ada@example.com", "Hi", "<p>Hi</p>", None),
        ),
        (
            sms_config(format!("http://127.0.0.1:{port}/sms")),
            Cleared::for_channel_tests(Channel::Sms, "+33612345678", "", "Hi", None),
        ),
        (
            webhook_config(format!("http://127.0.0.1:{port}/hook")),
            Cleared::for_channel_tests(Channel::Webhook, "subject", "", "Hi", None),
        ),
    ];
    for (config, message) in cases {
        let channels = Channels::from_config(&config).unwrap();
        let outcome = channels.deliver(&message).await;
        assert!(
            matches!(outcome, Outcome::Transient { .. }),
            "{:?}: {outcome:?}",
            message.channel()
        );
    }
}

#[tokio::test]
async fn an_address_that_cannot_be_one_fails_and_is_suppressed_without_a_call() {
    // The port is closed: reaching the provider would give Transient instead.
    let port = closed_port().await;
    let email = Channels::from_config(&email_config(format!("smtp://127.0.0.1:{port}"))).unwrap();
    let sms = Channels::from_config(&sms_config(format!("http://127.0.0.1:{port}/sms"))).unwrap();
    for (channels, message) in [
        (
            &email,
            Cleared::for_channel_tests(Channel::Email, "ada at example", "Hi", "<p>Hi</p>", None),
        ),
        (
            &sms,
            Cleared::for_channel_tests(Channel::Sms, "06 12 34 56 78", "", "Hi", None),
        ),
    ] {
        assert!(matches!(
            channels.deliver(&message).await,
            Outcome::Permanent { suppress: true, .. }
        ));
    }
}
