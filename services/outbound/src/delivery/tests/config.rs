//! Which flags make which channel, and which are refused.

use super::*;

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
