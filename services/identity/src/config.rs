//! The identity service's own settings, next to the platform's.

use std::sync::Arc;
use std::time::Duration;

use ecrm_auth::VerifierConfig;
use ecrm_crypto::{MasterKey, MasterKeyArg, Secret};
use ecrm_platform::config::{ConfigError, SecretParser};

use ecrm_auth::MAX_TOKEN_LIFETIME;

const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Bounds of a session's lifetime: under a minute it saves no login; past 30 days it outlives
/// any reason to stay logged in without a password.
const MIN_SESSION_LIFETIME: Duration = Duration::from_secs(60);
const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Longest refresh interval: well within the verifier's staleness bound (60 s).
const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, clap::Args)]
pub struct IdentityConfig {
    /// Key that seals the signing keys at rest: 32 bytes, base64. Keep it in a secret store;
    /// losing it makes every signing key unreadable (rotate to make new ones).
    #[arg(long = "master-key", env = "ECRM_IDENTITY_MASTER_KEY", hide_env_values = true, value_parser = SecretParser::<MasterKeyArg>::new())]
    pub master_key: MasterKeyArg,
    /// The `iss` of every token, checked by every service.
    #[arg(
        long = "token-issuer",
        env = "ECRM_TOKEN_ISSUER",
        default_value = "ecrm-identity"
    )]
    pub issuer: String,
    /// How long issued tokens live.
    #[arg(long = "token-lifetime", env = "ECRM_TOKEN_LIFETIME", default_value = "15m", value_parser = humantime::parse_duration)]
    pub token_lifetime: Duration,
    /// How long a session started at login may refresh tokens before its principal must log
    /// in again.
    #[arg(long = "session-lifetime", env = "ECRM_SESSION_LIFETIME", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_lifetime: Duration,
    /// How often this service's own verifier reloads keys and revocations: the bound within
    /// which a revocation or a disabled principal takes effect here.
    #[arg(long = "auth-refresh-interval", env = "ECRM_AUTH_REFRESH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub auth_refresh_interval: Duration,
    /// How long a new signing key is published before a rotation may make it sign: longer than
    /// every verifier's refresh interval.
    #[arg(long = "key-publish-delay", env = "ECRM_KEY_PUBLISH_DELAY", default_value = "10s", value_parser = humantime::parse_duration)]
    pub key_publish_delay: Duration,
    /// Password of the `admin` operator created on first start when there is no operator yet.
    /// Unset: no operator is created (`ecrm up` makes one and prints it).
    #[arg(long = "bootstrap-admin-password", env = "ECRM_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true, value_parser = SecretParser::<Secret<String>>::new())]
    pub bootstrap_admin_password: Option<Secret<String>>,
}

impl IdentityConfig {
    pub fn new(master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key: MasterKeyArg(master_key),
            issuer: "ecrm-identity".to_owned(),
            token_lifetime: Duration::from_secs(15 * 60),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            auth_refresh_interval: VerifierConfig::DEFAULT_REFRESH_INTERVAL,
            key_publish_delay: VerifierConfig::DEFAULT_REFRESH_INTERVAL * 2,
            bootstrap_admin_password: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(ConfigError {
                flag: "--token-issuer",
                env: "ECRM_TOKEN_ISSUER",
                reason: "must not be empty".to_owned(),
            });
        }
        if self.token_lifetime < Duration::from_secs(1) || self.token_lifetime > MAX_TOKEN_LIFETIME
        {
            return Err(ConfigError {
                flag: "--token-lifetime",
                env: "ECRM_TOKEN_LIFETIME",
                reason: "must be between 1s and 24h".to_owned(),
            });
        }
        if self.session_lifetime < MIN_SESSION_LIFETIME
            || self.session_lifetime > MAX_SESSION_LIFETIME
        {
            return Err(ConfigError {
                flag: "--session-lifetime",
                env: "ECRM_SESSION_LIFETIME",
                reason: "must be between 1 minute and 30 days".to_owned(),
            });
        }
        // A refresh, plus a fetch that may take its timeout, must land before the snapshot is
        // too old to trust.
        if self.auth_refresh_interval.is_zero() || self.auth_refresh_interval > MAX_REFRESH_INTERVAL
        {
            return Err(ConfigError {
                flag: "--auth-refresh-interval",
                env: "ECRM_AUTH_REFRESH_INTERVAL",
                reason: format!(
                    "must be more than zero and at most {} s",
                    MAX_REFRESH_INTERVAL.as_secs()
                ),
            });
        }
        if self.key_publish_delay <= self.auth_refresh_interval {
            return Err(ConfigError {
                flag: "--key-publish-delay",
                env: "ECRM_KEY_PUBLISH_DELAY",
                reason: "must be longer than --auth-refresh-interval".to_owned(),
            });
        }
        if let Some(password) = &self.bootstrap_admin_password
            && let Err(reason) = crate::credentials::check_password(password.expose())
        {
            return Err(ConfigError {
                flag: "--bootstrap-admin-password",
                env: "ECRM_BOOTSTRAP_ADMIN_PASSWORD",
                reason,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_lifetimes_from_a_minute_to_thirty_days_are_accepted() {
        let master = Arc::new(MasterKey::generate().unwrap().0);
        let with = |lifetime| IdentityConfig {
            session_lifetime: lifetime,
            ..IdentityConfig::new(master.clone())
        };
        assert!(with(DEFAULT_SESSION_LIFETIME).validate().is_ok());
        assert!(with(MIN_SESSION_LIFETIME).validate().is_ok());
        assert!(with(MAX_SESSION_LIFETIME).validate().is_ok());
        for refused in [
            Duration::from_secs(59),
            MAX_SESSION_LIFETIME + Duration::from_secs(1),
        ] {
            let error = with(refused).validate().unwrap_err();
            assert_eq!(error.flag, "--session-lifetime");
        }
    }
}
