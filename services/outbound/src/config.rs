//! The outbound service's own settings, next to the platform's.

use std::sync::Arc;

use ecrm_crypto::{MasterKey, MasterKeyArg};
use ecrm_platform::config::SecretParser;

#[derive(Debug, Clone, clap::Args)]
pub struct OutboundConfig {
    /// Key the blind-index key of suppressed addresses is derived from: 32 bytes, base64. Keep
    /// it in a secret store; with another key, no suppression matches its address any more.
    #[arg(long = "master-key", env = "ECRM_OUTBOUND_MASTER_KEY", hide_env_values = true, value_parser = SecretParser::<MasterKeyArg>::new())]
    pub master_key: MasterKeyArg,
}

impl OutboundConfig {
    pub fn new(master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key: MasterKeyArg(master_key),
        }
    }
}
