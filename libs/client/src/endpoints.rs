//! Where each service of the suite listens.

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// A service of the suite; its name is also the audience of the tokens it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Identity,
    Profiles,
    Consent,
    Segmentation,
    Outbound,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Identity,
        Service::Profiles,
        Service::Consent,
        Service::Segmentation,
        Service::Outbound,
    ];

    /// The service's name and token audience: `identity`, `profiles`, ...
    pub fn name(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Profiles => "profiles",
            Service::Consent => "consent",
            Service::Segmentation => "segmentation",
            Service::Outbound => "outbound",
        }
    }

    /// Its port under `ecrm up`'s default base port (50051 to 50055).
    fn default_port(self) -> u16 {
        match self {
            Service::Identity => 50051,
            Service::Profiles => 50052,
            Service::Consent => 50053,
            Service::Segmentation => 50054,
            Service::Outbound => 50055,
        }
    }

    /// The environment variable naming its URL: `ECRM_IDENTITY_URL`, `ECRM_PROFILES_URL`, ...
    pub fn env_var(self) -> String {
        format!("ECRM_{}_URL", self.name().to_uppercase())
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The URL (`http://host:port`) of each service the client may call. Identity is always
/// needed: tokens come from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<String>,
}

impl Endpoints {
    /// Identity only; add the others with [`Endpoints::with`].
    pub fn identity(url: impl Into<String>) -> Self {
        Self {
            identity: url.into(),
            profiles: None,
            consent: None,
            segmentation: None,
            outbound: None,
        }
    }

    /// Every service as `ecrm up` runs it on `host` from `base_port` (identity) on.
    pub fn local(host: &str, base_port: u16) -> Self {
        let url = |service: Service| {
            let port = base_port + (service.default_port() - Service::Identity.default_port());
            format!("http://{host}:{port}")
        };
        Self {
            identity: url(Service::Identity),
            profiles: Some(url(Service::Profiles)),
            consent: Some(url(Service::Consent)),
            segmentation: Some(url(Service::Segmentation)),
            outbound: Some(url(Service::Outbound)),
        }
    }

    /// From `ECRM_IDENTITY_URL` (required), `ECRM_PROFILES_URL`, `ECRM_CONSENT_URL`,
    /// `ECRM_SEGMENTATION_URL` and `ECRM_OUTBOUND_URL`.
    pub fn from_env() -> Result<Self, ClientError> {
        let read = |service: Service| {
            std::env::var(service.env_var())
                .ok()
                .filter(|url| !url.is_empty())
        };
        let identity =
            read(Service::Identity).ok_or(ClientError::NotConfigured(Service::Identity))?;
        Ok(Self {
            identity,
            profiles: read(Service::Profiles),
            consent: read(Service::Consent),
            segmentation: read(Service::Segmentation),
            outbound: read(Service::Outbound),
        })
    }

    /// These endpoints with `service` at `url`.
    #[must_use]
    pub fn with(mut self, service: Service, url: impl Into<String>) -> Self {
        let url = url.into();
        match service {
            Service::Identity => self.identity = url,
            Service::Profiles => self.profiles = Some(url),
            Service::Consent => self.consent = Some(url),
            Service::Segmentation => self.segmentation = Some(url),
            Service::Outbound => self.outbound = Some(url),
        }
        self
    }

    /// The URL of `service`, if known.
    pub fn get(&self, service: Service) -> Option<&str> {
        match service {
            Service::Identity => Some(&self.identity),
            Service::Profiles => self.profiles.as_deref(),
            Service::Consent => self.consent.as_deref(),
            Service::Segmentation => self.segmentation.as_deref(),
            Service::Outbound => self.outbound.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_endpoints_follow_the_base_port_in_suite_order() {
        let endpoints = Endpoints::local("127.0.0.1", 60051);
        assert_eq!(endpoints.identity, "http://127.0.0.1:60051");
        assert_eq!(
            endpoints.get(Service::Outbound),
            Some("http://127.0.0.1:60055")
        );
        assert_eq!(
            Endpoints::identity("http://id:1")
                .with(Service::Consent, "http://c:2")
                .get(Service::Consent),
            Some("http://c:2")
        );
        assert_eq!(Service::Segmentation.env_var(), "ECRM_SEGMENTATION_URL");
    }
}
