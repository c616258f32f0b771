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
    /// The outbound service, e.g. http://127.0.0.1:50055, which emails requesters the code that
    /// verifies them. Unset: operators verify requesters (VerifyRequester).
    #[arg(long = "outbound-url", env = "ECRM_OUTBOUND_URL")]
    pub outbound_url: Option<String>,
    /// Outbound's email template for the verification code; it reads the variables `code`,
    /// `request_type` and `expires_at`.
    #[arg(
        long = "verification-template",
        env = "ECRM_VERIFICATION_TEMPLATE",
        default_value = DEFAULT_VERIFICATION_TEMPLATE
    )]
    pub verification_template: String,
    /// How long a verification code works.
    #[arg(long = "verification-code-ttl", env = "ECRM_VERIFICATION_CODE_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub verification_code_ttl: Duration,
}

const DEFAULT_VERIFICATION_TEMPLATE: &str = "dsr_verification";
/// Outbound's limit on template keys.
const MAX_TEMPLATE_CHARS: usize = 64;
const MIN_CODE_TTL: Duration = Duration::from_secs(60);
const MAX_CODE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

impl ConsentConfig {
    pub fn new(master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key: MasterKeyArg(master_key),
            checkpoint_interval: Duration::from_secs(600),
            profiles_url: None,
            personal_data: Vec::new(),
            task_interval: Duration::from_secs(2),
            outbound_url: None,
            verification_template: DEFAULT_VERIFICATION_TEMPLATE.to_owned(),
            verification_code_ttl: Duration::from_secs(24 * 3600),
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
        if !(MIN_CODE_TTL..=MAX_CODE_TTL).contains(&self.verification_code_ttl) {
            return Err(ConfigError {
                flag: "--verification-code-ttl",
                env: "ECRM_VERIFICATION_CODE_TTL",
                reason: "between 1m and 30days".to_owned(),
            });
        }
        let template = &self.verification_template;
        if template.is_empty()
            || template.chars().count() > MAX_TEMPLATE_CHARS
            || !template.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
            })
        {
            return Err(ConfigError {
                flag: "--verification-template",
                env: "ECRM_VERIFICATION_TEMPLATE",
                reason: format!(
                    "an outbound template key: 1 to {MAX_TEMPLATE_CHARS} of a-z, 0-9, '_', '-', '.'"
                ),
            });
        }
        self.profiles_endpoint()?;
        self.outbound_endpoint()?;
        self.personal_data_endpoints().map(drop)
    }

    /// The outbound service's endpoint, when one is configured. A send that hangs would hold up
    /// SubmitRequest: it gives up after 10 seconds, and the request records why.
    pub fn outbound_endpoint(&self) -> Result<Option<Endpoint>, ConfigError> {
        Ok(optional_service_endpoint(
            self.outbound_url.as_deref(),
            "--outbound-url",
            "ECRM_OUTBOUND_URL",
            "http://127.0.0.1:50055",
        )?
        .map(|endpoint| endpoint.timeout(Duration::from_secs(10))))
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        consent: ConsentConfig,
    }

    fn parse(args: &[&str]) -> ConsentConfig {
        let key = MasterKey::generate().unwrap().1;
        let mut all = vec!["ecrm-consent", "--master-key", key.as_str()];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().consent
    }

    #[test]
    fn verification_settings_default_and_are_checked() {
        let config = parse(&[]);
        assert_eq!(config.verification_template, "dsr_verification");
        assert_eq!(config.verification_code_ttl, Duration::from_secs(24 * 3600));
        assert!(config.outbound_url.is_none());
        assert!(config.validate().is_ok());

        let config = parse(&[
            "--outbound-url",
            "http://127.0.0.1:50055",
            "--verification-template",
            "dsr_code.fr",
            "--verification-code-ttl",
            "15m",
        ]);
        assert!(config.outbound_endpoint().unwrap().is_some());
        assert_eq!(config.verification_code_ttl, Duration::from_secs(900));
        assert!(config.validate().is_ok());

        let error = parse(&["--verification-code-ttl", "10s"])
            .validate()
            .unwrap_err();
        assert_eq!(error.flag, "--verification-code-ttl");
        let error = parse(&["--verification-template", "Bad Key"])
            .validate()
            .unwrap_err();
        assert_eq!(error.flag, "--verification-template");
        let error = parse(&["--outbound-url", "not a url"])
            .validate()
            .unwrap_err();
        assert_eq!(error.flag, "--outbound-url");
    }
}
