//! The outbound service's own settings, next to the platform's.

use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use ecrm_crypto::{MasterKey, MasterKeyArg};
use ecrm_platform::config::{ConfigError, SecretParser, optional_service_endpoint};
use tonic::transport::Endpoint;

use crate::delivery::DeliveryConfig;
use crate::dispatch::DispatchSettings;
use crate::gate::Policy;
use crate::gate::quiet_hours::QuietHours;
use crate::unsubscribe::UnsubscribeConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct OutboundConfig {
    /// Key the blind-index key of suppressed addresses and the one-click unsubscribe links'
    /// key are derived from: 32 bytes, base64. Keep it in a secret store; with another key, no
    /// suppression matches its address and no link sent before works any more.
    #[arg(long = "master-key", env = "ECRM_OUTBOUND_MASTER_KEY", hide_env_values = true, value_parser = SecretParser::<MasterKeyArg>::new())]
    pub master_key: MasterKeyArg,
    /// The consent service, e.g. http://127.0.0.1:50053: it holds what each customer agreed to,
    /// and one-click unsubscribes are recorded there as withdrawals. Unset: unsubscribes are
    /// kept here, blocking sends, until a process with one forwards them.
    #[arg(long = "consent-url", env = "ECRM_CONSENT_URL")]
    pub consent_url: Option<String>,
    #[command(flatten)]
    pub unsubscribe: UnsubscribeConfig,
    #[command(flatten)]
    pub delivery: DeliveryConfig,
    /// The profiles service, e.g. http://127.0.0.1:50052, asked for each recipient's address
    /// when their message is sent. Unset: nothing is sent.
    #[arg(long = "profiles-url", env = "ECRM_PROFILES_URL")]
    pub profiles_url: Option<String>,
    /// The segmentation service, e.g. http://127.0.0.1:50054, whose segments campaigns go
    /// to. Unset: campaigns go to explicit lists only.
    #[arg(long = "segmentation-url", env = "ECRM_SEGMENTATION_URL")]
    pub segmentation_url: Option<String>,
    /// The locale of a message when neither the request nor the recipient's profile gives one
    /// with a template.
    #[arg(
        long = "default-locale",
        env = "ECRM_OUTBOUND_DEFAULT_LOCALE",
        default_value = "en"
    )]
    pub default_locale: String,
    /// The time zone of recipients whose profile gives none (IANA, e.g. Europe/Paris).
    #[arg(
        long = "default-timezone",
        env = "ECRM_OUTBOUND_DEFAULT_TIMEZONE",
        default_value = "UTC"
    )]
    pub default_timezone: String,
    /// Local hours in which no marketing message is sent, `HH:MM-HH:MM` in the recipient's
    /// time zone; `none` for none. A message due inside them waits until they end.
    #[arg(
        long = "quiet-hours",
        env = "ECRM_OUTBOUND_QUIET_HOURS",
        default_value = "21:00-08:00"
    )]
    pub quiet_hours: String,
    /// At most this many marketing messages per subject, across campaigns, in
    /// `--frequency-cap-days`; 0 for no cap.
    #[arg(
        long = "frequency-cap",
        env = "ECRM_OUTBOUND_FREQUENCY_CAP",
        default_value_t = 3
    )]
    pub frequency_cap: u32,
    #[arg(
        long = "frequency-cap-days",
        env = "ECRM_OUTBOUND_FREQUENCY_CAP_DAYS",
        default_value_t = 7
    )]
    pub frequency_cap_days: u32,
    /// Queue workers in this process (several processes may run side by side).
    #[arg(long = "workers", env = "ECRM_OUTBOUND_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Messages a worker hands to channels at once.
    #[arg(
        long = "send-concurrency",
        env = "ECRM_OUTBOUND_SEND_CONCURRENCY",
        default_value_t = 16
    )]
    pub send_concurrency: usize,
    /// How long a worker's claim on a batch lasts: a worker that dies lets its messages go to
    /// the others after this.
    #[arg(
        long = "claim-secs",
        env = "ECRM_OUTBOUND_CLAIM_SECS",
        default_value_t = 120
    )]
    pub claim_secs: u64,
    /// Attempts reaching a provider before a message fails.
    #[arg(
        long = "max-attempts",
        env = "ECRM_OUTBOUND_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    /// The first retry's delay after a transient failure; doubled each time, with jitter.
    #[arg(
        long = "retry-base-secs",
        env = "ECRM_OUTBOUND_RETRY_BASE_SECS",
        default_value_t = 30
    )]
    pub retry_base_secs: u64,
    /// How long a message waits when consent or profiles did not answer the gate.
    #[arg(
        long = "gate-retry-secs",
        env = "ECRM_OUTBOUND_GATE_RETRY_SECS",
        default_value_t = 30
    )]
    pub gate_retry_secs: u64,
    /// How long a channel pauses when its provider asks to slow down without saying how long.
    #[arg(
        long = "rate-limit-pause-secs",
        env = "ECRM_OUTBOUND_RATE_LIMIT_PAUSE_SECS",
        default_value_t = 60
    )]
    pub rate_limit_pause_secs: u64,
    /// How long an idle worker waits before looking at the queue again.
    #[arg(skip = Duration::from_millis(500))]
    pub idle: Duration,
}

impl OutboundConfig {
    pub fn new(master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key: MasterKeyArg(master_key),
            consent_url: None,
            unsubscribe: UnsubscribeConfig::default(),
            delivery: DeliveryConfig::default(),
            profiles_url: None,
            segmentation_url: None,
            default_locale: "en".to_owned(),
            default_timezone: "UTC".to_owned(),
            quiet_hours: "21:00-08:00".to_owned(),
            frequency_cap: 3,
            frequency_cap_days: 7,
            workers: 2,
            send_concurrency: 16,
            claim_secs: 120,
            max_attempts: 5,
            retry_base_secs: 30,
            gate_retry_secs: 30,
            rate_limit_pause_secs: 60,
            idle: Duration::from_millis(500),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.consent_endpoint()?;
        self.profiles_endpoint()?;
        self.segmentation_endpoint()?;
        self.policy()?;
        self.dispatch().map(drop)
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

    /// The profiles service's endpoint, when one is configured.
    pub fn profiles_endpoint(&self) -> Result<Option<Endpoint>, ConfigError> {
        optional_service_endpoint(
            self.profiles_url.as_deref(),
            "--profiles-url",
            "ECRM_PROFILES_URL",
            "http://127.0.0.1:50052",
        )
    }

    /// The segmentation service's endpoint, when one is configured.
    pub fn segmentation_endpoint(&self) -> Result<Option<Endpoint>, ConfigError> {
        optional_service_endpoint(
            self.segmentation_url.as_deref(),
            "--segmentation-url",
            "ECRM_SEGMENTATION_URL",
            "http://127.0.0.1:50054",
        )
    }

    /// The gate's rules, checked.
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let default_zone: Tz = self.default_timezone.parse().map_err(|_| ConfigError {
            flag: "--default-timezone",
            env: "ECRM_OUTBOUND_DEFAULT_TIMEZONE",
            reason: format!(
                "{:?} is not an IANA time zone such as Europe/Paris",
                self.default_timezone
            ),
        })?;
        let quiet_hours = if self.quiet_hours.trim().eq_ignore_ascii_case("none") {
            None
        } else {
            Some(
                QuietHours::parse(&self.quiet_hours).ok_or_else(|| ConfigError {
                    flag: "--quiet-hours",
                    env: "ECRM_OUTBOUND_QUIET_HOURS",
                    reason: format!(
                        "{:?} is not HH:MM-HH:MM (e.g. 21:00-08:00) or none",
                        self.quiet_hours
                    ),
                })?,
            )
        };
        crate::templates::domain::check_locale("--default-locale", &self.default_locale).map_err(
            |_| ConfigError {
                flag: "--default-locale",
                env: "ECRM_OUTBOUND_DEFAULT_LOCALE",
                reason: format!(
                    "{:?} is not a locale such as en or fr-FR",
                    self.default_locale
                ),
            },
        )?;
        if self.frequency_cap > 0 && self.frequency_cap_days == 0 {
            return Err(ConfigError {
                flag: "--frequency-cap-days",
                env: "ECRM_OUTBOUND_FREQUENCY_CAP_DAYS",
                reason: "at least 1 when there is a cap".to_owned(),
            });
        }
        Ok(Policy {
            quiet_hours,
            frequency_cap: (self.frequency_cap > 0).then(|| {
                (
                    self.frequency_cap,
                    chrono::Duration::days(i64::from(self.frequency_cap_days)),
                )
            }),
            default_locale: self.default_locale.clone(),
            default_zone,
            unavailable_retry: chrono::Duration::seconds(
                i64::try_from(self.gate_retry_secs.max(1)).unwrap_or(i64::MAX),
            ),
        })
    }

    /// How the queue's workers work, checked.
    pub fn dispatch(&self) -> Result<DispatchSettings, ConfigError> {
        let positive = |value: u64, flag: &'static str, env: &'static str| {
            if value == 0 {
                Err(ConfigError {
                    flag,
                    env,
                    reason: "at least 1".to_owned(),
                })
            } else {
                Ok(value)
            }
        };
        Ok(DispatchSettings {
            workers: usize::try_from(positive(
                self.workers as u64,
                "--workers",
                "ECRM_OUTBOUND_WORKERS",
            )?)
            .unwrap_or(1),
            concurrency: usize::try_from(positive(
                self.send_concurrency as u64,
                "--send-concurrency",
                "ECRM_OUTBOUND_SEND_CONCURRENCY",
            )?)
            .unwrap_or(1),
            claim: Duration::from_secs(positive(
                self.claim_secs,
                "--claim-secs",
                "ECRM_OUTBOUND_CLAIM_SECS",
            )?),
            max_attempts: i32::try_from(positive(
                u64::from(self.max_attempts),
                "--max-attempts",
                "ECRM_OUTBOUND_MAX_ATTEMPTS",
            )?)
            .unwrap_or(i32::MAX),
            retry_base: Duration::from_secs(positive(
                self.retry_base_secs,
                "--retry-base-secs",
                "ECRM_OUTBOUND_RETRY_BASE_SECS",
            )?),
            rate_limit_pause: Duration::from_secs(positive(
                self.rate_limit_pause_secs,
                "--rate-limit-pause-secs",
                "ECRM_OUTBOUND_RATE_LIMIT_PAUSE_SECS",
            )?),
            idle: self.idle,
            ..DispatchSettings::default()
        })
    }
}
