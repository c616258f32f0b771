//! The logged-in session, kept between commands in the user's config directory (mode 0600):
//! the endpoints, the session's refresh token and the access tokens still fresh. Never the
//! password or the client secret.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ecrm_client::{CachedToken, Client, Credentials, Endpoints};
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
        let client = Client::connect(
            saved.endpoints.clone(),
            Credentials::session(saved.refresh_token.clone()),
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
