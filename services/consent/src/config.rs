//! The consent service's own settings, next to the platform's.

use std::time::Duration;

use ecrm_platform::config::ConfigError;
use tonic::transport::Endpoint;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConsentConfig {
    /// The profiles service, e.g. http://127.0.0.1:50052, where subjects named by identifier in
    /// data subject requests are found. Unset: requests name subjects by id.
    #[arg(long = "profiles-url", env = "ECRM_PROFILES_URL")]
    pub profiles_url: Option<String>,
}

impl ConsentConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
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
