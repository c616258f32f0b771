//! The consent service's own settings, next to the platform's.

use std::sync::Arc;
use std::time::Duration;

use ecrm_crypto::{MasterKey, MasterKeyArg};
use ecrm_platform::config::{ConfigError, SecretParser};
use tonic::transport::Endpoint;

#[derive(Debug, Clone, clap::Args)]
pub struct ConsentConfig {
    /// Key the ledger checkpoints' Ed25519 signing key is derived from: 32 bytes, base64. Keep
    /// it in a secret store; the same key verifies every checkpoint signed with it.
    #[arg(long = "master-key", env = "ECRM_CONSENT_MASTER_KEY", hide_env_values = true, value_parser = SecretParser::<MasterKeyArg>::new())]
    pub master_key: MasterKeyArg,
    /// How often the heads of the ledger's chains are signed (when any moved).
    #[arg(long = "checkpoint-interval", env = "ECRM_CHECKPOINT_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,
    /// The profiles service, e.g. http://127.0.0.1:50052, where subjects named by identifier in
    /// data subject requests are found. Unset: requests name subjects by id.
    #[arg(long = "profiles-url", env = "ECRM_PROFILES_URL")]
    pub profiles_url: Option<String>,
}

impl ConsentConfig {
    pub fn new(master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key: MasterKeyArg(master_key),
            checkpoint_interval: Duration::from_secs(600),
            profiles_url: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.checkpoint_interval < Duration::from_secs(1) {
            return Err(ConfigError {
                flag: "--checkpoint-interval",
                env: "ECRM_CHECKPOINT_INTERVAL",
                reason: "at least 1s".to_owned(),
            });
        }
        self.profiles_endpoint().map(drop)
    }

    /// The profiles service's endpoint, when one is configured.
    pub fn profiles_endpoint(&self) -> Result<Option<Endpoint>, ConfigError> {
        self.profiles_url
            .as_deref()
            .map(|url| {
                Endpoint::from_shared(url.to_owned())
                    .map(|e| e.connect_timeout(Duration::from_secs(5)))
                    .map_err(|_| ConfigError {
                        flag: "--profiles-url",
                        env: "ECRM_PROFILES_URL",
                        reason: "not a URL such as http://127.0.0.1:50052".to_owned(),
                    })
            })
            .transpose()
    }
}
