//! The segmentation service's own settings, next to the platform's.

use std::collections::HashMap;

use ecrm_platform::config::{ConfigError, optional_service_endpoint};
use ecrm_platform::money::is_currency;
use tonic::transport::Endpoint;

#[derive(Debug, Clone, clap::Args)]
pub struct SegmentationConfig {
    /// The profiles service, e.g. http://127.0.0.1:50052, whose change feed (orders, visits,
    /// merges, erasures, restrictions) this service projects. Unset: nothing is projected.
    #[arg(long = "profiles-url", env = "ECRM_PROFILES_URL")]
    pub profiles_url: Option<String>,
    /// The consent service, e.g. http://127.0.0.1:50053, whose ledger says who objected to
    /// profiling (purpose `profiling` withdrawn). Unset: no objection is known.
    #[arg(long = "consent-url", env = "ECRM_CONSENT_URL")]
    pub consent_url: Option<String>,
    /// The currency monetary values are reported in (ISO 4217).
    #[arg(
        long = "reporting-currency",
        env = "ECRM_REPORTING_CURRENCY",
        default_value = "EUR"
    )]
    pub reporting_currency: String,
    /// What one unit of another currency is worth in the reporting currency, as `CODE=RATE`
    /// (e.g. `USD=0.92`). Repeat the flag, or separate with commas. Orders in a currency with
    /// no rate are counted but not valued.
    #[arg(
        long = "exchange-rate",
        env = "ECRM_EXCHANGE_RATES",
        value_delimiter = ','
    )]
    pub exchange_rates: Vec<String>,
}

/// The reporting currency and the rates into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    pub reporting: String,
    rates: HashMap<String, f64>,
}

impl Rates {
    /// What one unit of `currency` is worth in the reporting currency, if known.
    pub fn rate(&self, currency: &str) -> Option<f64> {
        if currency == self.reporting {
            Some(1.0)
        } else {
            self.rates.get(currency).copied()
        }
    }
}

impl SegmentationConfig {
    pub fn new() -> Self {
        Self {
            profiles_url: None,
            consent_url: None,
            reporting_currency: "EUR".to_owned(),
            exchange_rates: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.profiles_endpoint()?;
        self.consent_endpoint()?;
        self.rates().map(drop)
    }

    /// The reporting currency and the configured rates, checked.
    pub fn rates(&self) -> Result<Rates, ConfigError> {
        if !is_currency(&self.reporting_currency) {
            return Err(ConfigError {
                flag: "--reporting-currency",
                env: "ECRM_REPORTING_CURRENCY",
                reason: format!(
                    "{:?} is not an ISO 4217 code such as EUR",
                    self.reporting_currency
                ),
            });
        }
        let rates = self
            .exchange_rates
            .iter()
            .map(|entry| {
                let bad = || ConfigError {
                    flag: "--exchange-rate",
                    env: "ECRM_EXCHANGE_RATES",
                    reason: format!(
                        "{entry:?} is not CODE=RATE with a positive rate, e.g. USD=0.92"
                    ),
                };
                let (code, rate) = entry.split_once('=').ok_or_else(bad)?;
                let rate: f64 = rate.trim().parse().map_err(|_| bad())?;
                if !is_currency(code) || !rate.is_finite() || rate <= 0.0 {
                    return Err(bad());
                }
                Ok((code.to_owned(), rate))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rates {
            reporting: self.reporting_currency.clone(),
            rates,
        })
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

impl SegmentationConfig {
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

impl Default for SegmentationConfig {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_checked() {
        let config = SegmentationConfig {
            exchange_rates: vec!["USD=0.92".to_owned(), "JPY=0.0061".to_owned()],
            ..SegmentationConfig::new()
        };
        let rates = config.rates().ok();
        assert_eq!(rates.as_ref().and_then(|r| r.rate("USD")), Some(0.92));
        assert_eq!(rates.as_ref().and_then(|r| r.rate("EUR")), Some(1.0));
        assert_eq!(rates.as_ref().and_then(|r| r.rate("GBP")), None);
        for bad in ["USD", "USD=-1", "usd=1", "USD=abc", "XYZ=2"] {
            let config = SegmentationConfig {
                exchange_rates: vec![bad.to_owned()],
                ..SegmentationConfig::new()
            };
            assert!(config.rates().is_err(), "{bad}");
        }
        let config = SegmentationConfig {
            reporting_currency: "euro".to_owned(),
            ..SegmentationConfig::new()
        };
        assert!(config.validate().is_err());
    }
}
