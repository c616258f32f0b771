//! Finding the PostgreSQL server the tests use, once per process.

use std::sync::OnceLock;

use diesel::{Connection, PgConnection};
use ecrm_localpg::{ClusterOptions, LocalCluster, PgBinaries};
use ecrm_platform::DatabaseUrl;

use crate::error::Error;

/// Superuser URL of a server the tests may use, checked by the harness.
const URL_VAR: &str = "ECRM_TEST_DATABASE_URL";

/// The server most development machines and CI already run.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

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
        Self::private_cluster_in(&std::env::temp_dir().join(format!("ecrm-testkit-pg-{uid}")))
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
