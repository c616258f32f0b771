//! The channels against real servers on this machine, and their configuration.

use ecrm_crypto::Secret;

use super::*;

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

#[tokio::test]
async fn no_flag_configures_no_channel() {
    let channels = Channels::from_config(&config()).unwrap();
    for channel in [Channel::Email, Channel::Sms, Channel::Webhook] {
        assert!(!channels.configured(channel));
        let message =
            Cleared::for_channel_tests(channel, "ada@example.com", "Hi", "<p>Hi</p>", None);
        assert_eq!(channels.deliver(&message).await, Outcome::NotConfigured);
    }
}

#[tokio::test]
async fn each_url_configures_its_channel_only() {
    let channels = Channels::from_config(&DeliveryConfig {
        smtp_url: Some(Secret::new("smtp://127.0.0.1:2525".to_owned())),
        email_from: Some("Shop <news@shop.example>".to_owned()),
        ..config()
    })
    .unwrap();
    assert!(channels.configured(Channel::Email));
    assert!(!channels.configured(Channel::Sms));
    assert!(!channels.configured(Channel::Webhook));

    let channels = Channels::from_config(&DeliveryConfig {
        sms_url: Some("https://sms.example/v1/messages".to_owned()),
        sms_token: Some(Secret::new("token".to_owned())),
        sms_sender: Some("SHOP".to_owned()),
        webhook_url: Some("https://hooks.example/ecrm".to_owned()),
        webhook_secret: Some(Secret::new("0123456789abcdef".to_owned())),
        ..config()
    })
    .unwrap();
    assert!(!channels.configured(Channel::Email));
    assert!(channels.configured(Channel::Sms));
    assert!(channels.configured(Channel::Webhook));
}

#[tokio::test]
async fn a_channel_missing_a_companion_flag_is_refused_by_that_flag() {
    let smtp = || DeliveryConfig {
        smtp_url: Some(Secret::new("smtp://127.0.0.1:2525".to_owned())),
        email_from: Some("Shop <news@shop.example>".to_owned()),
        ..config()
    };
    assert_eq!(
        refused_flag(&DeliveryConfig {
            email_from: None,
            ..smtp()
        }),
        "--email-from"
    );
    assert_eq!(
        refused_flag(&DeliveryConfig {
            email_from: Some("not an address".to_owned()),
            ..smtp()
        }),
        "--email-from"
    );
    assert_eq!(
        refused_flag(&DeliveryConfig {
            smtp_url: Some(Secret::new("smtp://127.0.0.1:2525?tls=always".to_owned())),
            ..smtp()
        }),
        "--smtp-url"
    );
    assert_eq!(
        refused_flag(&DeliveryConfig {
            smtp_ca_file: Some("/nonexistent/ca.pem".into()),
            smtp_url: Some(Secret::new("smtp://127.0.0.1:2525?tls=required".to_owned())),
            ..smtp()
        }),
        "--smtp-ca-file"
    );

    let sms = || DeliveryConfig {
        sms_url: Some("https://sms.example/v1/messages".to_owned()),
        sms_token: Some(Secret::new("token".to_owned())),
        sms_sender: Some("SHOP".to_owned()),
        ..config()
    };
    assert_eq!(
        refused_flag(&DeliveryConfig {
            sms_token: None,
            ..sms()
        }),
        "--sms-token"
    );
    assert_eq!(
        refused_flag(&DeliveryConfig {
            sms_sender: None,
            ..sms()
        }),
        "--sms-sender"
    );
    assert_eq!(
        refused_flag(&DeliveryConfig {
            sms_url: Some("sms.example".to_owned()),
            ..sms()
        }),
        "--sms-url"
    );

    let webhook = || DeliveryConfig {
        webhook_url: Some("https://hooks.example/ecrm".to_owned()),
        webhook_secret: Some(Secret::new("0123456789abcdef".to_owned())),
        ..config()
    };
    assert_eq!(
        refused_flag(&DeliveryConfig {
            webhook_secret: None,
            ..webhook()
        }),
        "--webhook-secret"
    );
    assert_eq!(
        refused_flag(&DeliveryConfig {
            webhook_secret: Some(Secret::new("short".to_owned())),
            ..webhook()
        }),
        "--webhook-secret"
    );
}

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    delivery: DeliveryConfig,
}

#[test]
fn flags_default_and_secrets_stay_out_of_debug_and_help() {
    use clap::{CommandFactory, Parser};

    let cli = Cli::try_parse_from([
        "ecrm-outbound",
        "--smtp-url",
        "smtp://ops:hunter2@mail.example?tls=required",
        "--sms-token",
        "sms-hunter2",
        "--webhook-secret",
        "webhook-hunter2-0123456789",
    ])
    .unwrap();
    assert_eq!(cli.delivery.smtp_pool_size, 8);
    assert_eq!(cli.delivery.smtp_timeout_secs, 30);
    assert_eq!(cli.delivery.http_timeout_secs, 10);
    assert!(!format!("{cli:?}").contains("hunter2"));

    let command = Cli::command();
    for secret in ["smtp_url", "sms_token", "webhook_secret"] {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_id() == secret)
            .unwrap();
        assert!(arg.is_hide_env_values_set(), "{secret}");
    }
    for flag in [
        "--smtp-pool-size",
        "--http-timeout-secs",
        "--smtp-timeout-secs",
    ] {
        assert!(
            Cli::try_parse_from(["ecrm-outbound", flag, "0"]).is_err(),
            "{flag}"
        );
    }
}

#[tokio::test]
async fn a_ca_file_needs_tls_and_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let smtp = |url: &str, ca: &std::path::Path| DeliveryConfig {
        smtp_url: Some(Secret::new(url.to_owned())),
        smtp_ca_file: Some(ca.to_owned()),
        email_from: Some("news@shop.example".to_owned()),
        ..config()
    };
    assert_eq!(
        refused_flag(&smtp("smtp://127.0.0.1:2525?tls=required", &empty)),
        "--smtp-ca-file"
    );
    assert_eq!(
        refused_flag(&smtp("smtp://127.0.0.1:2525", &empty)),
        "--smtp-ca-file"
    );
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

#[tokio::test]
async fn a_provider_that_never_answers_times_out_as_transient() {
    // Accepts connections and reads nothing, so every call waits for an answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let channels = Channels::from_config(&DeliveryConfig {
        http_timeout_secs: 1,
        ..sms_config(format!("http://127.0.0.1:{port}/sms"))
    })
    .unwrap();
    let message = Cleared::for_channel_tests(Channel::Sms, "+33612345678", "", "Hi", None);
    let started = std::time::Instant::now();
    assert_eq!(
        channels.deliver(&message).await,
        Outcome::Transient {
            detail: "http call timed out".to_owned()
        }
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    held.abort();
}
