//! Building each member's gRPC services for `ecrm up`, and what the user must be told once.

use std::path::Path;
use std::sync::Arc;

use ecrm_crypto::{MasterKey, Secret};
use ecrm_identity::{Identity, IdentityConfig};
use ecrm_platform::{ServiceContext, ServiceRoutes};

use super::suite::Member;

/// Where the identity service's master key is kept between runs.
const MASTER_KEY_FILE: &str = "identity-master.key";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read or write the master key at {path}")]
    MasterKeyFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the master key at {0} is not 32 base64-encoded bytes")]
    MasterKeyInvalid(std::path::PathBuf),
    #[error(
        "refusing the master key at {0}: it must be a file of yours that only you can read (chmod 600)"
    )]
    MasterKeyExposed(std::path::PathBuf),
    #[error(transparent)]
    Crypto(#[from] ecrm_crypto::CryptoError),
    #[error("cannot start the identity service")]
    Identity(#[from] ecrm_identity::IdentityError),
}

/// What every member is built with.
pub struct SuiteSettings {
    master_key: Arc<MasterKey>,
    bootstrap_password: Option<Secret<String>>,
}

impl SuiteSettings {
    /// Reads the master key of `data_dir`, or makes one on first run (mode 0600);
    /// `ECRM_IDENTITY_MASTER_KEY` takes precedence when set.
    pub fn load(
        data_dir: &Path,
        bootstrap_password: Option<Secret<String>>,
    ) -> Result<Self, BuildError> {
        let master_key = match std::env::var("ECRM_IDENTITY_MASTER_KEY") {
            Ok(value) if !value.is_empty() => Arc::new(value.parse()?),
            _ => Arc::new(master_key_file(&data_dir.join(MASTER_KEY_FILE))?),
        };
        Ok(Self {
            master_key,
            bootstrap_password,
        })
    }
}

/// Reads the key at `path`, refusing a file others could read or replace; or writes a new one
/// (mode 0600, through a temporary file renamed into place, so a crash leaves no half key).
fn master_key_file(path: &Path) -> Result<MasterKey, BuildError> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let io = |source| BuildError::MasterKeyFile {
        path: path.to_owned(),
        source,
    };
    // Opened without following a link, then checked on the open file: what is checked is what
    // is read.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path);
    match opened {
        Ok(mut file) => {
            let metadata = file.metadata().map_err(io)?;
            if !metadata.is_file()
                || metadata.mode() & 0o077 != 0
                || metadata.uid() != nix::unistd::geteuid().as_raw()
            {
                return Err(BuildError::MasterKeyExposed(path.to_owned()));
            }
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).map_err(io)?;
            text.parse()
                .map_err(|_| BuildError::MasterKeyInvalid(path.to_owned()))
        }
        Err(error) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
            Err(BuildError::MasterKeyExposed(path.to_owned()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let (key, encoded) = MasterKey::generate()?;
            let dir = path.parent().unwrap_or(Path::new("."));
            // tempfile creates it with mode 0600.
            let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
            writeln!(file, "{encoded}")
                .and_then(|()| file.as_file().sync_all())
                .map_err(io)?;
            file.persist_noclobber(path).map_err(|e| io(e.error))?;
            Ok(key)
        }
        Err(error) => Err(io(error)),
    }
}

/// A member's routes, and a notice to print once (the first operator's credential).
pub struct Built {
    pub routes: ServiceRoutes,
    pub notice: Option<String>,
}

/// Builds `member` on `context`. Members not built yet serve health and reflection only.
pub async fn build(
    member: &Member,
    context: ServiceContext,
    settings: &SuiteSettings,
) -> Result<Built, BuildError> {
    match member.name {
        "identity" => {
            let identity =
                Identity::new(context, IdentityConfig::new(settings.master_key.clone())).await?;
            let notice = identity
                .bootstrap_admin(settings.bootstrap_password.clone())
                .await?
                .map(|(username, password)| {
                    if settings.bootstrap_password.is_some() {
                        format!("first operator created: {username} (password from ECRM_BOOTSTRAP_ADMIN_PASSWORD)")
                    } else {
                        format!(
                            "first operator created, shown once: username {username}, password {}",
                            password.expose()
                        )
                    }
                });
            Ok(Built {
                routes: identity.routes(),
                notice,
            })
        }
        _ => Ok(Built {
            routes: ServiceRoutes::unauthenticated(),
            notice: None,
        }),
    }
}
