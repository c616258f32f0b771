//! What `ecrm up` keeps between runs and reads from its environment: the services' master
//! keys (files in the data folder, or variables) and outbound's channels.

use std::path::Path;
use std::sync::Arc;

use ecrm_crypto::MasterKey;
use ecrm_suite::SuiteKeys;

/// Where the identity service's master key is kept between runs.
const MASTER_KEY_FILE: &str = "identity-master.key";
/// Where the profiles service's master key is kept between runs: its own, so neither service
/// can open the other's data.
const PROFILES_MASTER_KEY_FILE: &str = "profiles-master.key";
/// Where the consent service's master key (its checkpoint signing key's seed) is kept.
const CONSENT_MASTER_KEY_FILE: &str = "consent-master.key";
/// Where the outbound service's master key (its suppressions' blind-index key's seed) is kept.
const OUTBOUND_MASTER_KEY_FILE: &str = "outbound-master.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
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
    #[error("outbound's channel settings: {0}")]
    OutboundChannels(String),
}

/// Reads the master keys of `data_dir`, or makes them on first run (mode 0600);
/// `ECRM_IDENTITY_MASTER_KEY`, `ECRM_PROFILES_MASTER_KEY`, `ECRM_CONSENT_MASTER_KEY` and
/// `ECRM_OUTBOUND_MASTER_KEY` take precedence when set.
pub fn load(data_dir: &Path) -> Result<SuiteKeys, KeyError> {
    Ok(SuiteKeys {
        identity: master_key(data_dir, "ECRM_IDENTITY_MASTER_KEY", MASTER_KEY_FILE)?,
        profiles: master_key(
            data_dir,
            "ECRM_PROFILES_MASTER_KEY",
            PROFILES_MASTER_KEY_FILE,
        )?,
        consent: master_key(data_dir, "ECRM_CONSENT_MASTER_KEY", CONSENT_MASTER_KEY_FILE)?,
        outbound: master_key(
            data_dir,
            "ECRM_OUTBOUND_MASTER_KEY",
            OUTBOUND_MASTER_KEY_FILE,
        )?,
    })
}

/// Outbound's channels, from the `ECRM_OUTBOUND_*` variables the outbound binary reads
/// (`ECRM_OUTBOUND_SMTP_URL`, `ECRM_OUTBOUND_EMAIL_FROM`, ...): none set, no channel.
pub fn outbound_channels() -> Result<ecrm_outbound::DeliveryConfig, KeyError> {
    #[derive(clap::Parser)]
    struct FromEnv {
        #[command(flatten)]
        delivery: ecrm_outbound::DeliveryConfig,
    }
    <FromEnv as clap::Parser>::try_parse_from(["ecrm-outbound"])
        .map(|parsed| parsed.delivery)
        .map_err(|error| KeyError::OutboundChannels(error.to_string()))
}

/// The key in the environment variable `env` when set, else the one in `data_dir/file`.
fn master_key(data_dir: &Path, env: &str, file: &str) -> Result<Arc<MasterKey>, KeyError> {
    Ok(Arc::new(match std::env::var(env) {
        Ok(value) if !value.is_empty() => value.parse()?,
        _ => master_key_file(&data_dir.join(file))?,
    }))
}

/// Reads the key at `path`, refusing a file others could read or replace; or writes a new one
/// (mode 0600, through a temporary file renamed into place, so a crash leaves no half key).
fn master_key_file(path: &Path) -> Result<MasterKey, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let io = |source| KeyError::MasterKeyFile {
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
                return Err(KeyError::MasterKeyExposed(path.to_owned()));
            }
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).map_err(io)?;
            text.parse()
                .map_err(|_| KeyError::MasterKeyInvalid(path.to_owned()))
        }
        Err(error) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
            Err(KeyError::MasterKeyExposed(path.to_owned()))
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
