//! How a service other than identity verifies its callers: identity's keys and revocations,
//! fetched with the service's own internal account.

use std::time::Duration;

use std::sync::Arc;

use ecrm_auth::{AccountCredentials, IdentityTrust, ServiceTokens, Verifier, VerifierConfig};
use tonic::transport::Endpoint;

use crate::ServiceContext;
use crate::config::{ConfigError, SecretParser, service_endpoint};

/// Longest refresh interval: well within the verifier's staleness bound (60 s).
const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// A client secret from configuration; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct ClientSecret(String);

impl std::str::FromStr for ClientSecret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(****)")
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    /// The identity service, e.g. http://127.0.0.1:50051: where signing keys and revocations
    /// are read.
    #[arg(long = "identity-url", env = "ECRM_IDENTITY_URL")]
    pub identity_url: String,
    /// This service's internal account at identity.
    #[arg(long = "client-id", env = "ECRM_CLIENT_ID")]
    pub client_id: String,
    #[arg(long = "client-secret", env = "ECRM_CLIENT_SECRET", hide_env_values = true, value_parser = SecretParser::<ClientSecret>::new())]
    pub client_secret: ClientSecret,
    /// The `iss` every token must carry.
    #[arg(
        long = "token-issuer",
        env = "ECRM_TOKEN_ISSUER",
        default_value = "ecrm-identity"
    )]
    pub issuer: String,
    /// How often keys and revocations are reloaded: the bound within which a revocation takes
    /// effect here.
    #[arg(long = "auth-refresh-interval", env = "ECRM_AUTH_REFRESH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub refresh_interval: Duration,
}

impl AuthConfig {
    pub fn new(identity_url: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            identity_url: identity_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: ClientSecret(client_secret.to_owned()),
            issuer: "ecrm-identity".to_owned(),
            refresh_interval: VerifierConfig::DEFAULT_REFRESH_INTERVAL,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.endpoint()?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError {
                flag: "--client-id",
                env: "ECRM_CLIENT_ID",
                reason: "must not be empty".to_owned(),
            });
        }
        if self.refresh_interval < Duration::from_millis(100)
            || self.refresh_interval > MAX_REFRESH_INTERVAL
        {
            return Err(ConfigError {
                flag: "--auth-refresh-interval",
                env: "ECRM_AUTH_REFRESH_INTERVAL",
                reason: format!("between 100ms and {}s", MAX_REFRESH_INTERVAL.as_secs()),
            });
        }
        Ok(())
    }

    fn endpoint(&self) -> Result<Endpoint, ConfigError> {
        service_endpoint(
            &self.identity_url,
            "--identity-url",
            "ECRM_IDENTITY_URL",
            "http://127.0.0.1:50051",
        )
    }

    /// The verifier of calls to the service `audience`, loaded from identity (over the
    /// context's TLS) and refreshed until the context's shutdown. `scopes` are what the
    /// service's token asks for (one its account holds).
    pub async fn verifier(
        &self,
        context: &ServiceContext,
        audience: &str,
        scopes: Vec<String>,
    ) -> Result<Verifier, ConfigError> {
        Ok(self.verifier_and_tokens(context, audience, scopes).await?.0)
    }

    /// The verifier, and the tokens of the service's own calls to other services: one login
    /// at identity for both.
    pub async fn verifier_and_tokens(
        &self,
        context: &ServiceContext,
        audience: &str,
        scopes: Vec<String>,
    ) -> Result<(Verifier, Arc<ServiceTokens>), ConfigError> {
        let channel = context.connect(self.endpoint()?)?;
        let tokens = Arc::new(ServiceTokens::new(
            channel.clone(),
            AccountCredentials {
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.0.clone(),
            },
        ));
        let trust = IdentityTrust::with_tokens(channel, tokens.clone(), scopes);
        let config = VerifierConfig {
            refresh_interval: self.refresh_interval,
            ..VerifierConfig::new(self.issuer.clone(), audience)
        };
        Ok((
            Verifier::start(config, trust, context.shutdown.clone()).await,
            tokens,
        ))
    }
}
