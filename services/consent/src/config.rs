//! The consent service's own settings, next to the platform's.

use std::sync::Arc;
use std::time::Duration;

use ecrm_crypto::{MasterKey, MasterKeyArg};
use ecrm_platform::config::{
    ConfigError, SecretParser, optional_service_endpoint, service_endpoint,
};
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
    /// A service holding personal data, as `name=url` (e.g. `profiles=http://127.0.0.1:50052`):
    /// approved requests are carried out at each. Repeat the flag, or separate with commas.
    #[arg(
        long = "personal-data",
        env = "ECRM_PERSONAL_DATA",
        value_delimiter = ','
    )]
    pub personal_data: Vec<String>,
    /// How often the worker looks for request tasks due.
    #[arg(long = "task-interval", env = "ECRM_TASK_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub task_interval: Duration,
}

impl ConsentConfig {
    pub fn new(master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key: MasterKeyArg(master_key),
            checkpoint_interval: Duration::from_secs(600),
            profiles_url: None,
            personal_data: Vec::new(),
            task_interval: Duration::from_secs(2),
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
        self.profiles_endpoint()?;
        self.personal_data_endpoints().map(drop)
    }

    /// The services holding personal data: name and endpoint.
    pub fn personal_data_endpoints(&self) -> Result<Vec<(String, Endpoint)>, ConfigError> {
        self.personal_data
            .iter()
            .map(|entry| {
                let bad = || ConfigError {
                    flag: "--personal-data",
                    env: "ECRM_PERSONAL_DATA",
                    reason: format!(
                        "{entry:?} is not name=url, e.g. profiles=http://127.0.0.1:50052"
                    ),
                };
                let (name, url) = entry.split_once('=').ok_or_else(bad)?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                    return Err(bad());
                }
                let endpoint = service_endpoint(url, "--personal-data", "ECRM_PERSONAL_DATA", url)
                    .map_err(|_| bad())?
                    .timeout(Duration::from_secs(60));
                Ok((name.to_owned(), endpoint))
            })
            .collect()
    }

    /// The profiles service's endpoint, when one is configured.
    pub fn profiles_endpoint(&self) -> Result<Option<Endpoint>, ConfigError> {
        optional_service_endpoint(
            self.profiles_url.as_deref(),
            "--profiles-url",
            "ECRM_PROFILES_URL",
            "http://127.0.0.1:50052",
        )
    }
}
