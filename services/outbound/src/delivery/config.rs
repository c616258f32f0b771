//! The delivery flags: where each channel's provider is and how to reach it.

use std::path::PathBuf;

use ecrm_crypto::Secret;
use ecrm_platform::config::SecretParser;

/// The providers of the three channels. A channel whose URL is not set is not configured:
/// its messages are reported [`NotConfigured`](super::Outcome::NotConfigured).
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryConfig {
    /// The SMTP relay email is sent through: `smtp://host:25` (no TLS),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS, or `tls=opportunistic`),
    /// `smtps://host:465` (TLS from the start). Credentials in the URL are percent-encoded.
    #[arg(long = "smtp-url", env = "ECRM_OUTBOUND_SMTP_URL", hide_env_values = true, value_parser = SecretParser::<Secret<String>>::new())]
    pub smtp_url: Option<Secret<String>>,
    /// A PEM file of root certificates trusted for the relay's TLS besides the system ones,
    /// for a relay with a private certificate authority.
    #[arg(long = "smtp-ca-file", env = "ECRM_OUTBOUND_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// The sender of every email, e.g. `Shop <news@shop.example>`; required with --smtp-url.
    /// Its domain also ends every Message-ID.
    #[arg(long = "email-from", env = "ECRM_OUTBOUND_EMAIL_FROM")]
    pub email_from: Option<String>,
    /// How many SMTP connections are kept open to the relay at most.
    #[arg(long = "smtp-pool-size", env = "ECRM_OUTBOUND_SMTP_POOL_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub smtp_pool_size: u32,
    /// How long connecting to the relay may take, and then sending one message in all, in
    /// seconds.
    #[arg(long = "smtp-timeout-secs", env = "ECRM_OUTBOUND_SMTP_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub smtp_timeout_secs: u64,
    /// The SMS provider's endpoint messages are POSTed to as JSON.
    #[arg(long = "sms-url", env = "ECRM_OUTBOUND_SMS_URL")]
    pub sms_url: Option<String>,
    /// The SMS provider's API token, sent as `Authorization: Bearer`; required with --sms-url.
    #[arg(long = "sms-token", env = "ECRM_OUTBOUND_SMS_TOKEN", hide_env_values = true, value_parser = SecretParser::<Secret<String>>::new())]
    pub sms_token: Option<Secret<String>>,
    /// The sender id SMS are sent from (a number or a registered name); required with --sms-url.
    #[arg(long = "sms-sender", env = "ECRM_OUTBOUND_SMS_SENDER")]
    pub sms_sender: Option<String>,
    /// The endpoint webhook messages are POSTed to as JSON.
    #[arg(long = "webhook-url", env = "ECRM_OUTBOUND_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// The key webhook calls are signed with (HMAC-SHA256, header `Ecrm-Signature`); required
    /// with --webhook-url. The receiver checks signatures with the same key.
    #[arg(long = "webhook-secret", env = "ECRM_OUTBOUND_WEBHOOK_SECRET", hide_env_values = true, value_parser = SecretParser::<Secret<String>>::new())]
    pub webhook_secret: Option<Secret<String>>,
    /// How long one SMS or webhook call may take in all, in seconds.
    #[arg(long = "http-timeout-secs", env = "ECRM_OUTBOUND_HTTP_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub http_timeout_secs: u64,
}

impl Default for DeliveryConfig {
    /// No channel configured, the defaults of the flags otherwise.
    fn default() -> Self {
        Self {
            smtp_url: None,
            smtp_ca_file: None,
            email_from: None,
            smtp_pool_size: 8,
            smtp_timeout_secs: 30,
            sms_url: None,
            sms_token: None,
            sms_sender: None,
            webhook_url: None,
            webhook_secret: None,
            http_timeout_secs: 10,
        }
    }
}
