//! The outbound service's own settings, next to the platform's.

use std::sync::Arc;

use ecrm_crypto::{MasterKey, MasterKeyArg};
use ecrm_platform::config::{ConfigError, SecretParser, optional_service_endpoint};
use tonic::transport::Endpoint;

use crate::unsubscribe::UnsubscribeConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct OutboundConfig {
    /// Key the blind-index key of suppressed addresses is derived from: 32 bytes, base64. Keep
    /// it in a secret store; with another key, no suppression matches its address any more.
    #[arg(long = "master-key", env = "ECRM_OUTBOUND_MASTER_KEY", hide_env_values = true, value_parser = SecretParser::<MasterKeyArg>::new())]
    pub master_key: MasterKeyArg,
    /// The consent service, e.g. http://127.0.0.1:50053: it holds what each customer agreed to,
    /// and one-click unsubscribes are recorded there as withdrawals. Unset: unsubscribes are
    /// kept here, blocking sends, until a process with one forwards them.
    #[arg(long = "consent-url", env = "ECRM_CONSENT_URL")]
    pub consent_url: Option<String>,
    #[command(flatten)]
    pub unsubscribe: UnsubscribeConfig,
}

impl OutboundConfig {
    pub fn new(master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key: MasterKeyArg(master_key),
            consent_url: None,
            unsubscribe: UnsubscribeConfig::default(),
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
}
