//! A certificate authority of the tests' own, for (mutual) TLS: it issues certificates for
//! servers and clients, and writes them where a service's `--tls-*` flags can read them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::Error;

/// A self-signed CA.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate the CA issued, and its private key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`Issued::write`] put the certificate and the key.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its common name).
    pub fn new(name: &str) -> Result<Self, Error> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(Error::Certificate)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(Error::Certificate)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(Error::Certificate)?;
        Ok(Self { issuer })
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA's certificate to `dir/<file>` and returns its path.
    pub fn write(&self, dir: &Path, file: &str) -> Result<PathBuf, Error> {
        let path = dir.join(file);
        write(&path, &self.pem())?;
        Ok(path)
    }

    /// A certificate for `common_name`, valid for the names and addresses of `names` (as a
    /// server) and as a client.
    pub fn issue(&self, common_name: &str, names: &[&str]) -> Result<Issued, Error> {
        let names: Vec<String> = names.iter().map(|&name| name.to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(Error::Certificate)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(Error::Certificate)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(Error::Certificate)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A certificate for loopback (`localhost`, 127.0.0.1 and ::1), as a server and a client.
    pub fn issue_loopback(&self, common_name: &str) -> Result<Issued, Error> {
        self.issue(common_name, &["localhost", "127.0.0.1", "::1"])
    }
}

impl Issued {
    /// Writes the certificate and key to `dir/<name>.pem` and `dir/<name>-key.pem`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<IssuedFiles, Error> {
        let files = IssuedFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        write(&files.cert, &self.cert_pem)?;
        write(&files.key, &self.key_pem)?;
        Ok(files)
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::WriteFile {
        path: path.to_owned(),
        source,
    })
}
