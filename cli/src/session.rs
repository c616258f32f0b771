//! The logged-in session, kept between commands in the user's config directory (mode 0600):
//! the endpoints, the session's refresh token and the access tokens still fresh. Never the
//! password or the client secret.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ecrm_client::{CachedToken, Client, ClientTls, Credentials, Endpoints};
use serde::{Deserialize, Serialize};

use crate::failure::CliError;

const FILE_NAME: &str = "session.json";

/// What `ecrm login` keeps.
#[derive(Serialize, Deserialize)]
pub struct Saved {
    pub endpoints: Endpoints,
    /// The operator's username or the service account's client id, for people.
    pub principal: String,
    pub refresh_token: String,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tokens: Vec<CachedToken>,
    /// The TLS files given at login, for `https://` URLs.
    #[serde(default, skip_serializing_if = "TlsFiles::is_empty")]
    pub tls: TlsFiles,
}

/// What the client trusts and presents over TLS, as files: read again by every command, so a
/// renewed certificate is picked up without logging in again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct TlsFiles {
    /// PEM bundle of the CAs that sign the services' certificates, for https:// URLs. Unset:
    /// the system's CAs.
    #[arg(long = "tls-ca", env = "ECRM_TLS_CA")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for a suite that requires mutual TLS.
    #[arg(long = "tls-cert", env = "ECRM_TLS_CERT", requires = "key")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long = "tls-key", env = "ECRM_TLS_KEY", requires = "cert")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    /// The files, each made absolute so a later command in another folder finds them.
    pub fn absolute(self) -> Result<Self, CliError> {
        let absolute = |path: Option<PathBuf>| {
            path.map(|path| {
                std::path::absolute(&path).map_err(|source| CliError::File {
                    doing: "find",
                    path,
                    source,
                })
            })
            .transpose()
        };
        Ok(Self {
            ca: absolute(self.ca)?,
            cert: absolute(self.cert)?,
            key: absolute(self.key)?,
        })
    }

    /// The files read and checked.
    pub fn load(&self) -> Result<ClientTls, CliError> {
        ClientTls::from_files(
            self.ca.as_deref(),
            self.cert.as_deref().zip(self.key.as_deref()),
        )
        .map_err(|error| CliError::Usage(format!("TLS: {error}")))
    }
}

/// The session file: `$ECRM_CONFIG_DIR/session.json`, else `<config dir>/ecrm/session.json`
/// (`~/.config/ecrm` on Linux).
pub struct SessionFile {
    path: PathBuf,
}

impl SessionFile {
    pub fn locate() -> Result<Self, CliError> {
        let dir = match std::env::var_os("ECRM_CONFIG_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => dirs::config_dir()
                .ok_or_else(|| {
                    CliError::Failed(
                        "no config directory for this user: set ECRM_CONFIG_DIR".to_owned(),
                    )
                })?
                .join("ecrm"),
        };
        Ok(Self {
            path: dir.join(FILE_NAME),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Result<Option<Saved>, CliError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CliError::File {
                    doing: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        // A file from another version, or damaged: as good as logged out.
        Ok(serde_json::from_str(&text).ok())
    }

    /// Writes `saved` through a temporary file renamed into place: readers see the old file or
    /// the new one, and only its owner can read either.
    pub fn save(&self, saved: &Saved) -> Result<(), CliError> {
        let io = |doing, source| CliError::File {
            doing,
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| io("create the folder of", e))?;
        let json =
            serde_json::to_vec_pretty(saved).map_err(|e| io("write", std::io::Error::other(e)))?;
        // tempfile creates the file with mode 0600.
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| io("write", e))?;
        file.write_all(&json)
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| io("write", e))?;
        file.persist(&self.path).map_err(|e| io("write", e.error))?;
        Ok(())
    }

    pub fn remove(&self) -> Result<(), CliError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CliError::File {
                doing: "remove",
                path: self.path.clone(),
                source,
            }),
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The logged-in suite: a client calling with the session's tokens.
pub struct Session {
    pub client: Client,
    saved: Saved,
    file: SessionFile,
}

impl Session {
    /// The session `ecrm login` saved, or NotLoggedIn / SessionEnded.
    pub async fn open() -> Result<Self, CliError> {
        let file = SessionFile::locate()?;
        let saved = file.load()?.ok_or(CliError::NotLoggedIn)?;
        if saved.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(CliError::SessionEnded);
        }
        let client = Client::connect_with_tls(
            saved.endpoints.clone(),
            Credentials::session(saved.refresh_token.clone()),
            &saved.tls.load()?,
        )?;
        client.tokens().restore(saved.tokens.clone()).await;
        Ok(Self {
            client,
            saved,
            file,
        })
    }

    pub fn principal(&self) -> &str {
        &self.saved.principal
    }

    /// Keeps the tokens obtained meanwhile for the next command.
    pub async fn close(mut self) -> Result<(), CliError> {
        let tokens = self.client.tokens().cached().await;
        if tokens != self.saved.tokens {
            self.saved.tokens = tokens;
            self.file.save(&self.saved)?;
        }
        Ok(())
    }
}
