//! Transport security: the certificate a server presents and the CAs whose client certificates
//! it accepts (mutual TLS), and for a client the CAs it trusts and the certificate it presents
//! when a server asks for one. Certificates and keys are read from PEM files, and checked when
//! they are read so a bad file is refused at start, naming it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// How long a TLS handshake may take, on either side: a peer that stalls it holds a connection
/// slot and nothing more.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("cannot set up TLS to {url}")]
    Endpoint {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The certificates of a PEM file (one CA, or a bundle of several), refused when it holds none.
pub fn read_certificates(path: &Path) -> Result<Certificate, TlsError> {
    let pem = read(path)?;
    let certificates: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    if !certificates.is_ok_and(|certificates| !certificates.is_empty()) {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(Certificate::from_pem(pem))
}

/// A certificate chain and its private key, each from a PEM file.
pub fn read_identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let chain = read_certificates(cert)?;
    let key_pem = read(key)?;
    if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
        return Err(TlsError::NoKey {
            path: key.to_owned(),
        });
    }
    Ok(Identity::from_pem(chain.into_inner(), key_pem))
}

/// What a server presents, and whom it lets connect.
#[derive(Debug, Clone)]
pub struct ServerTls {
    identity: Identity,
    client_cas: Option<Certificate>,
}

impl ServerTls {
    /// TLS with `identity`; any client may connect (tokens still decide what it may call).
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            client_cas: None,
        }
    }

    /// Mutual TLS: only clients presenting a certificate signed by one of `cas` connect.
    #[must_use]
    pub fn requiring_clients_of(self, cas: Certificate) -> Self {
        Self {
            client_cas: Some(cas),
            ..self
        }
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.client_cas.is_some()
    }

    /// The configuration tonic's server takes.
    pub fn config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(self.identity.clone())
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.client_cas {
            Some(cas) => config.client_ca_root(cas.clone()),
            None => config,
        }
    }
}

/// What a client trusts and presents on `https://` URLs; `http://` URLs stay plaintext.
/// The default trusts the system's CAs and presents no certificate.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    cas: Option<Certificate>,
    identity: Option<Identity>,
}

impl ClientTls {
    /// Trusts only the CAs of `path` (one or a bundle) instead of the system's, when given, and
    /// presents the certificate and key of `identity`, when given.
    pub fn from_files(
        cas: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            cas: cas.map(read_certificates).transpose()?,
            identity: identity
                .map(|(cert, key)| read_identity(cert, key))
                .transpose()?,
        })
    }

    /// Trusts only `cas` to sign servers' certificates.
    #[must_use]
    pub fn trusting(self, cas: Certificate) -> Self {
        Self {
            cas: Some(cas),
            ..self
        }
    }

    /// Presents `identity` to servers that ask for a client certificate.
    #[must_use]
    pub fn presenting(self, identity: Identity) -> Self {
        Self {
            identity: Some(identity),
            ..self
        }
    }

    /// `endpoint` secured as its URL says: TLS for `https://`, checked against the trusted CAs
    /// and presenting the certificate, if any; unchanged for `http://`.
    pub fn secure(&self, endpoint: Endpoint) -> Result<Endpoint, TlsError> {
        if endpoint.uri().scheme_str() != Some("https") {
            return Ok(endpoint);
        }
        let mut config = ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        config = match &self.cas {
            Some(cas) => config.ca_certificate(cas.clone()),
            None => config.with_native_roots(),
        };
        if let Some(identity) = &self.identity {
            config = config.identity(identity.clone());
        }
        let url = endpoint.uri().to_string();
        endpoint
            .tls_config(config)
            .map_err(|source| TlsError::Endpoint { url, source })
    }
}
