//! TLS settings of a service: the certificate it serves with, the CAs whose client
//! certificates it requires (mutual TLS), and the CAs it trusts when it calls the others.

use std::path::PathBuf;

use ecrm_auth::tls::{ClientTls, ServerTls, TlsError, read_certificates, read_identity};

use crate::config::ConfigError;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsConfig {
    /// PEM certificate chain the service presents: it then serves TLS only, and presents the
    /// same certificate to the services it calls over https:// when they ask for one.
    #[arg(long = "tls-cert", env = "ECRM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long = "tls-key", env = "ECRM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates are accepted: every caller must then
    /// present one (mutual TLS). List the suite's own CA and each partner's.
    #[arg(
        long = "tls-client-ca",
        env = "ECRM_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// PEM bundle of the CAs that sign the other services' certificates, for their https://
    /// URLs. Unset: the system's CAs.
    #[arg(long = "tls-ca", env = "ECRM_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// TLS as configured, its files read and checked.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// Serving TLS, when a certificate is configured; plaintext otherwise.
    pub server: Option<ServerTls>,
    /// Calling other services.
    pub client: ClientTls,
}

impl TlsConfig {
    /// Reads every file named, once; a missing or malformed one is refused, naming its flag.
    pub fn load(&self) -> Result<Tls, ConfigError> {
        let refuse = |flag: &'static str, env: &'static str| {
            move |error: TlsError| ConfigError {
                flag,
                env,
                reason: error.to_string(),
            }
        };
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(read_identity(cert, key).map_err(|error| {
                // The key's own problem, or the certificate's.
                let about_key = match &error {
                    TlsError::NoKey { .. } => true,
                    TlsError::Read { path, .. } => path == key,
                    _ => false,
                };
                if about_key {
                    refuse("--tls-key", "ECRM_TLS_KEY")(error)
                } else {
                    refuse("--tls-cert", "ECRM_TLS_CERT")(error)
                }
            })?),
            (None, None) if self.tls_client_ca.is_some() => {
                return Err(ConfigError {
                    flag: "--tls-client-ca",
                    env: "ECRM_TLS_CLIENT_CA",
                    reason: "needs --tls-cert and --tls-key".to_owned(),
                });
            }
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError {
                    flag: "--tls-cert",
                    env: "ECRM_TLS_CERT",
                    reason: "--tls-cert and --tls-key go together".to_owned(),
                });
            }
        };
        let client_cas = self
            .tls_client_ca
            .as_deref()
            .map(read_certificates)
            .transpose()
            .map_err(refuse("--tls-client-ca", "ECRM_TLS_CLIENT_CA"))?;
        let server = identity.clone().map(|identity| {
            let tls = ServerTls::new(identity);
            match client_cas {
                Some(cas) => tls.requiring_clients_of(cas),
                None => tls,
            }
        });
        // Calling the others: their CAs, and the same certificate when they ask for one.
        let mut client = ClientTls::default();
        if let Some(cas) = &self.tls_ca {
            client =
                client.trusting(read_certificates(cas).map_err(refuse("--tls-ca", "ECRM_TLS_CA"))?);
        }
        if let Some(identity) = identity {
            client = client.presenting(identity);
        }
        Ok(Tls { server, client })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_configured_is_plaintext() {
        let tls = TlsConfig::default().load().unwrap();
        assert!(tls.server.is_none());
    }

    #[test]
    fn a_missing_file_is_refused_naming_its_flag() {
        let config = TlsConfig {
            tls_ca: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        };
        let error = config.load().unwrap_err();
        assert_eq!(error.flag, "--tls-ca");
        assert!(error.reason.contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("ecrm-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-cert.pem");
        std::fs::write(&path, "hello").unwrap();
        let config = TlsConfig {
            tls_ca: Some(path.clone()),
            ..TlsConfig::default()
        };
        let error = config.load().unwrap_err();
        assert!(error.reason.contains("no PEM certificate"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_client_ca_without_a_server_certificate_is_refused() {
        let config = TlsConfig {
            tls_client_ca: Some("/ca.pem".into()),
            ..TlsConfig::default()
        };
        assert_eq!(config.load().unwrap_err().flag, "--tls-client-ca");
    }
}
