//! Building each member's gRPC services for `ecrm up`, and what the user must be told once.

use std::path::Path;
use std::sync::Arc;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ecrm_auth::{Scope, Scopes};
use ecrm_crypto::{MasterKey, Secret};
use ecrm_identity::{Identity, IdentityConfig};
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceRoutes};
use ecrm_profiles::ProfilesConfig;

use super::suite::Member;

/// Where the identity service's master key is kept between runs.
const MASTER_KEY_FILE: &str = "identity-master.key";
/// Where the profiles service's master key is kept between runs: its own, so neither service
/// can open the other's data.
const PROFILES_MASTER_KEY_FILE: &str = "profiles-master.key";
/// Where the consent service's master key (its checkpoint signing key's seed) is kept.
const CONSENT_MASTER_KEY_FILE: &str = "consent-master.key";
/// Where the outbound service's master key (its suppressions' blind-index key's seed) is kept.
const OUTBOUND_MASTER_KEY_FILE: &str = "outbound-master.key";
/// The display name of the internal account `ecrm up` gives each service, e.g. `ecrm up: profiles`.
const ACCOUNT_PREFIX: &str = "ecrm up: ";

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
    #[error("cannot start the profiles service")]
    Profiles(#[from] ecrm_profiles::ProfilesError),
    #[error("cannot start the consent service")]
    Consent(#[from] ecrm_consent::ConsentError),
    #[error("cannot start the segmentation service")]
    Segmentation(#[from] ecrm_segmentation::SegmentationError),
    #[error("outbound's channel settings: {0}")]
    OutboundChannels(String),
    #[error("cannot start the outbound service")]
    Outbound(#[from] ecrm_outbound::OutboundError),
    #[error("{0} needs the identity service, which is not running")]
    NoIdentity(&'static str),
}

/// What every member is built with.
pub struct SuiteSettings {
    master_key: Arc<MasterKey>,
    profiles_master_key: Arc<MasterKey>,
    consent_master_key: Arc<MasterKey>,
    outbound_master_key: Arc<MasterKey>,
    bootstrap_password: Option<Secret<String>>,
    /// Where outbound serves its one-click unsubscribe pages.
    pub outbound_http: SocketAddr,
}

impl SuiteSettings {
    /// Reads the master keys of `data_dir`, or makes them on first run (mode 0600);
    /// `ECRM_IDENTITY_MASTER_KEY`, `ECRM_PROFILES_MASTER_KEY`, `ECRM_CONSENT_MASTER_KEY` and
    /// `ECRM_OUTBOUND_MASTER_KEY` take precedence when set.
    pub fn load(
        data_dir: &Path,
        bootstrap_password: Option<Secret<String>>,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            master_key: master_key(data_dir, "ECRM_IDENTITY_MASTER_KEY", MASTER_KEY_FILE)?,
            profiles_master_key: master_key(
                data_dir,
                "ECRM_PROFILES_MASTER_KEY",
                PROFILES_MASTER_KEY_FILE,
            )?,
            consent_master_key: master_key(
                data_dir,
                "ECRM_CONSENT_MASTER_KEY",
                CONSENT_MASTER_KEY_FILE,
            )?,
            outbound_master_key: master_key(
                data_dir,
                "ECRM_OUTBOUND_MASTER_KEY",
                OUTBOUND_MASTER_KEY_FILE,
            )?,
            bootstrap_password,
            outbound_http: SocketAddr::from(([127, 0, 0, 1], 0)),
        })
    }
}

/// Outbound's channels, from the `ECRM_OUTBOUND_*` variables the outbound binary reads
/// (`ECRM_OUTBOUND_SMTP_URL`, `ECRM_OUTBOUND_EMAIL_FROM`, ...): none set, no channel.
fn outbound_channels() -> Result<ecrm_outbound::DeliveryConfig, BuildError> {
    #[derive(clap::Parser)]
    struct FromEnv {
        #[command(flatten)]
        delivery: ecrm_outbound::DeliveryConfig,
    }
    <FromEnv as clap::Parser>::try_parse_from(["ecrm-outbound"])
        .map(|parsed| parsed.delivery)
        .map_err(|error| BuildError::OutboundChannels(error.to_string()))
}

/// The key in the environment variable `env` when set, else the one in `data_dir/file`.
fn master_key(data_dir: &Path, env: &str, file: &str) -> Result<Arc<MasterKey>, BuildError> {
    Ok(Arc::new(match std::env::var(env) {
        Ok(value) if !value.is_empty() => value.parse()?,
        _ => master_key_file(&data_dir.join(file))?,
    }))
}

/// What members need of each other: where each listens, and identity once it runs.
#[derive(Default)]
pub struct Started {
    /// Kept to provision each later service's internal account.
    identity: Option<Identity>,
    /// `http://` URLs of every member, by name.
    urls: HashMap<&'static str, String>,
}

impl Started {
    /// Records where `member` listens; a wildcard address is reached on loopback.
    pub fn listens_on(&mut self, member: &'static str, addr: SocketAddr) {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        self.urls.insert(
            member,
            format!("http://{}", SocketAddr::new(ip, addr.port())),
        );
    }

    /// How `service` verifies its callers: identity's keys, read with an internal account
    /// provisioned for it now (fresh credentials each run, none stored).
    async fn auth_for(
        &self,
        service: &'static str,
        scopes: Scopes,
    ) -> Result<AuthConfig, BuildError> {
        let (Some(identity), Some(url)) = (&self.identity, self.urls.get("identity")) else {
            return Err(BuildError::NoIdentity(service));
        };
        let (client_id, secret) = identity
            .provision_internal_account(&format!("{ACCOUNT_PREFIX}{service}"), scopes)
            .await?;
        Ok(AuthConfig::new(url, &client_id, secret.expose()))
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
    started: &mut Started,
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
            let routes = identity.routes();
            started.identity = Some(identity);
            Ok(Built { routes, notice })
        }
        "profiles" => {
            // Its tokens read revocations from identity and ask consent what customers share.
            let scopes = Scopes::empty()
                .with(Scope::ProfilesRead)
                .with(Scope::ConsentRead);
            let auth = started.auth_for(member.name, scopes).await?;
            let config = ProfilesConfig {
                consent_url: started.urls.get("consent").cloned(),
                ..ProfilesConfig::new(settings.profiles_master_key.clone())
            };
            let routes = ecrm_profiles::build(context, config, auth).await?;
            Ok(Built {
                routes,
                notice: None,
            })
        }
        "consent" => {
            // Its tokens read revocations from identity, find subjects at profiles, carry
            // data subject requests out at every service holding personal data, and have
            // outbound email requesters their verification codes.
            let scopes = Scopes::empty()
                .with(Scope::ConsentRead)
                .with(Scope::ProfilesRead)
                .with(Scope::PrivacyExecute)
                .with(Scope::OutboundSend);
            let auth = started.auth_for(member.name, scopes).await?;
            let personal_data = ["profiles", "consent", "segmentation", "outbound"]
                .into_iter()
                .filter_map(|name| Some(format!("{name}={}", started.urls.get(name)?)))
                .collect();
            let config = ecrm_consent::ConsentConfig {
                profiles_url: started.urls.get("profiles").cloned(),
                outbound_url: started.urls.get("outbound").cloned(),
                personal_data,
                ..ecrm_consent::ConsentConfig::new(settings.consent_master_key.clone())
            };
            Ok(Built {
                routes: ecrm_consent::build(context, config, auth).await?,
                notice: None,
            })
        }
        "segmentation" => {
            // Its tokens read revocations from identity, the profiles change feed, and
            // consent's ledger for objections to profiling.
            let scopes = Scopes::empty()
                .with(Scope::SegmentsRead)
                .with(Scope::ProfilesRead)
                .with(Scope::ConsentRead);
            let auth = started.auth_for(member.name, scopes).await?;
            let config = ecrm_segmentation::SegmentationConfig {
                profiles_url: started.urls.get("profiles").cloned(),
                consent_url: started.urls.get("consent").cloned(),
                ..ecrm_segmentation::SegmentationConfig::new()
            };
            Ok(Built {
                routes: ecrm_segmentation::build(context, config, auth).await?,
                notice: None,
            })
        }
        "outbound" => {
            // Its tokens read revocations from identity, ask consent whether a message may go
            // and record one-click unsubscribes there, read addresses at profiles and
            // segments' members at segmentation.
            let scopes = Scopes::empty()
                .with(Scope::OutboundSend)
                .with(Scope::ConsentRead)
                .with(Scope::ConsentWrite)
                .with(Scope::ProfilesRead)
                .with(Scope::SegmentsRead);
            let auth = started.auth_for(member.name, scopes).await?;
            let mut config = ecrm_outbound::OutboundConfig {
                consent_url: started.urls.get("consent").cloned(),
                profiles_url: started.urls.get("profiles").cloned(),
                segmentation_url: started.urls.get("segmentation").cloned(),
                delivery: outbound_channels()?,
                ..ecrm_outbound::OutboundConfig::new(settings.outbound_master_key.clone())
            };
            config.unsubscribe.http_addr = settings.outbound_http;
            config.unsubscribe.public_url = match std::env::var("ECRM_OUTBOUND_PUBLIC_URL") {
                Ok(url) if !url.is_empty() => url,
                _ => format!("http://{}", settings.outbound_http),
            };
            Ok(Built {
                routes: ecrm_outbound::build(context, config, auth).await?,
                notice: None,
            })
        }
        _ => Ok(Built {
            routes: ServiceRoutes::unauthenticated(),
            notice: None,
        }),
    }
}
