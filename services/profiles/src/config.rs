//! The profiles service's own settings, next to the platform's.

use std::sync::Arc;
use std::time::Duration;

use ecrm_crypto::{MasterKey, MasterKeyArg};
use ecrm_platform::config::{ConfigError, SecretParser, optional_service_endpoint};
use tonic::transport::Endpoint;

#[derive(Debug, Clone, clap::Args)]
pub struct ProfilesConfig {
    /// Key that wraps every subject's data key and derives the blind-index key: 32 bytes,
    /// base64. Keep it in a secret store: without it no personal data can be read or found.
    #[arg(long = "master-key", env = "ECRM_PROFILES_MASTER_KEY", hide_env_values = true, value_parser = SecretParser::<MasterKeyArg>::new())]
    pub master_key: MasterKeyArg,
    /// How often change-feed readers look for changes written by other replicas (changes of
    /// this replica wake them at once).
    #[arg(long = "feed-poll-interval", env = "ECRM_FEED_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub feed_poll_interval: Duration,
    /// The consent service, e.g. http://127.0.0.1:50053, which says what customers share with
    /// partners. Unset: nothing is shared with any partner.
    #[arg(long = "consent-url", env = "ECRM_CONSENT_URL")]
    pub consent_url: Option<String>,
    /// How often interactions past their retention are deleted.
    #[arg(long = "retention-sweep-interval", env = "ECRM_RETENTION_SWEEP_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub retention_sweep_interval: Duration,
}

impl ProfilesConfig {
    pub fn new(master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key: MasterKeyArg(master_key),
            feed_poll_interval: Duration::from_secs(1),
            retention_sweep_interval: Duration::from_secs(3600),
            consent_url: None,
        }
    }

    /// The consent service's endpoint, when one is configured.
    pub fn consent_endpoint(&self) -> Result<Option<Endpoint>, ConfigError> {
        optional_service_endpoint(
            self.consent_url.as_deref(),
            "--consent-url",
            "ECRM_CONSENT_URL",
            "http://127.0.0.1:50053",
        )
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.consent_endpoint()?;
        if self.feed_poll_interval < Duration::from_millis(10)
            || self.feed_poll_interval > Duration::from_secs(60)
        {
            return Err(ConfigError {
                flag: "--feed-poll-interval",
                env: "ECRM_FEED_POLL_INTERVAL",
                reason: "between 10ms and 60s".to_owned(),
            });
        }
        if self.retention_sweep_interval < Duration::from_secs(1) {
            return Err(ConfigError {
                flag: "--retention-sweep-interval",
                env: "ECRM_RETENTION_SWEEP_INTERVAL",
                reason: "at least 1s".to_owned(),
            });
        }
        Ok(())
    }
}
