//! Finding the PostgreSQL server the tests use, once per process.

use std::sync::OnceLock;

use diesel::{Connection, PgConnection};
use ecrm_localpg::{ClusterOptions, LocalCluster, PgBinaries};
use ecrm_platform::DatabaseUrl;

use crate::error::Error;

/// Superuser URL of a server the tests may use, checked by the harness.
const URL_VAR: &str = "ECRM_TEST_DATABASE_URL";

/// The server most development machines and CI already run.
/// The server most development machines and CI already run; a listener that never answers
/// must not hang every test, hence the timeout.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?connect_timeout=3";

/// The PostgreSQL server of this test process: its superuser URL to the maintenance database.
#[derive(Debug)]
pub struct PgServer {
    admin_url: DatabaseUrl,
    /// The private cluster, when no server was configured or answering.
    cluster: Option<LocalCluster>,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

impl PgServer {
    /// The server for this process, found on first use. Blocking: call it from a blocking
    /// context or through [`crate::TestDatabase`], which does.
    pub fn get() -> Result<&'static PgServer, Error> {
        SERVER
            .get_or_init(|| Self::find().map_err(|e| ecrm_platform::status::chain(&e).to_string()))
            .as_ref()
            .map_err(|reason| Error::Unavailable {
                reason: reason.clone(),
            })
    }

    /// Superuser URL to the maintenance database (`postgres`).
    pub fn admin_url(&self) -> &DatabaseUrl {
        &self.admin_url
    }

    /// The private cluster this server runs on, when the harness started one.
    pub fn cluster(&self) -> Option<&LocalCluster> {
        self.cluster.as_ref()
    }

    fn find() -> Result<Self, Error> {
        if let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
            let admin_url: DatabaseUrl = url.parse().map_err(Error::BadUrl)?;
            PgConnection::establish(admin_url.expose()).map_err(Error::Connect)?;
            return Ok(Self {
                admin_url,
                cluster: None,
            });
        }
        let default: DatabaseUrl = DEFAULT_URL.parse().map_err(Error::BadUrl)?;
        match PgConnection::establish(default.expose()) {
            Ok(_) => Ok(Self {
                admin_url: default,
                cluster: None,
            }),
            Err(error) => {
                tracing::info!(%error, "no postgresql on 127.0.0.1:5432, starting a private cluster");
                Self::private_cluster()
            }
        }
    }

    /// The shared private cluster: in the temporary folder, one per user, shared by every test
    /// process (`ensure_running` adopts a server another process started) and left running so
    /// the next run starts at once.
    fn private_cluster() -> Result<Self, Error> {
        let uid = nix::unistd::getuid();
        let root = std::env::temp_dir().join(format!("ecrm-testkit-pg-{uid}"));
        ensure_private_folder(&root)?;
        Self::private_cluster_in(&root)
    }

    /// A private cluster with throwaway settings in `root`, started unless already running.
    pub fn private_cluster_in(root: &std::path::Path) -> Result<Self, Error> {
        let binaries = PgBinaries::find().map_err(Error::NoServer)?;
        let options = ClusterOptions {
            ephemeral: true,
            ..ClusterOptions::default()
        };
        let mut cluster =
            LocalCluster::init_or_open(binaries, root, options).map_err(Error::NoServer)?;
        cluster.ensure_running().map_err(Error::NoServer)?;
        let url = cluster.superuser_url("postgres").map_err(Error::NoServer)?;
        let admin_url: DatabaseUrl = url.as_str().parse().map_err(Error::BadUrl)?;
        Ok(Self {
            admin_url,
            cluster: Some(cluster),
        })
    }
}

/// Creates `root` (mode 0700) or checks that the existing one is ours and writable by us alone:
/// the temporary folder is shared, and another user could have made this path first.
fn ensure_private_folder(root: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(Error::UnsafeFolder {
                path: root.to_owned(),
                reason: error.to_string(),
            });
        }
    }
    let metadata = std::fs::symlink_metadata(root).map_err(|error| Error::UnsafeFolder {
        path: root.to_owned(),
        reason: error.to_string(),
    })?;
    let reason = if !metadata.is_dir() {
        Some("not a folder")
    } else if metadata.uid() != nix::unistd::getuid().as_raw() {
        Some("owned by another user")
    } else if metadata.mode() & 0o022 != 0 {
        Some("writable by other users")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::UnsafeFolder {
            path: root.to_owned(),
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}
