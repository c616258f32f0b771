//! The database `ecrm up` runs on: a private cluster in the data folder, or the server of a
//! given URL.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{Bool, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ecrm_localpg::{ClusterOptions, LocalCluster, PgBinaries};
use ecrm_platform::DatabaseUrl;
use ecrm_platform::db::quote_identifier;

/// The database the private cluster holds the suite in.
const DATABASE_NAME: &str = "ecrm";

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Cluster(#[from] ecrm_localpg::Error),
    #[error("the private cluster's url is not a usable postgres url")]
    ClusterUrl(#[source] ecrm_platform::db::DatabaseUrlError),
    #[error("cannot connect to {url}")]
    Connect {
        /// With its password masked.
        url: String,
        #[source]
        source: Box<diesel::ConnectionError>,
    },
    #[error("cannot create the database {DATABASE_NAME}")]
    Create(#[source] diesel::result::Error),
    #[error("database task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Where the suite's data lives while `ecrm up` runs.
#[derive(Debug)]
pub struct SuiteDatabase {
    /// A URL that may create roles and schemas in the suite's database.
    admin_url: DatabaseUrl,
    /// The private cluster, when we started one (stopped by [`SuiteDatabase::close`]).
    cluster: Option<(LocalCluster, PathBuf)>,
}

impl SuiteDatabase {
    /// Uses `url` when given; else initialises (first run) and starts the private cluster in
    /// `data_dir/pg` on `pg_port` and creates the suite's database in it.
    pub async fn open(
        url: Option<DatabaseUrl>,
        data_dir: &Path,
        pg_port: u16,
    ) -> Result<Self, DatabaseError> {
        if let Some(admin_url) = url {
            let check = admin_url.clone();
            tokio::task::spawn_blocking(move || connect(&check).map(drop)).await??;
            return Ok(Self {
                admin_url,
                cluster: None,
            });
        }
        let root = data_dir.join("pg");
        tokio::task::spawn_blocking(move || Self::start_private(root, pg_port)).await?
    }

    fn start_private(root: PathBuf, pg_port: u16) -> Result<Self, DatabaseError> {
        let binaries = PgBinaries::find()?;
        let mut cluster = LocalCluster::init_or_open(binaries, &root, ClusterOptions::default())?;
        cluster.start(pg_port)?;
        match create_database(&cluster) {
            Ok(admin_url) => Ok(Self {
                admin_url,
                cluster: Some((cluster, root)),
            }),
            Err(error) => {
                if let Err(stop) = cluster.stop() {
                    tracing::error!(error = %stop, "cannot stop postgresql");
                }
                Err(error)
            }
        }
    }

    pub fn admin_url(&self) -> &DatabaseUrl {
        &self.admin_url
    }

    /// Where the database is, for people: its address, and the folder of a private cluster.
    pub fn describe(&self) -> String {
        let address = format!(
            "{}:{}/{}",
            self.admin_url.host().unwrap_or("localhost"),
            self.admin_url.port().unwrap_or(5432),
            self.admin_url.database()
        );
        match &self.cluster {
            Some((_, root)) => format!("{address} (private cluster in {})", root.display()),
            None => address,
        }
    }

    /// Stops the private cluster, if we started one.
    pub async fn close(self) -> Result<(), DatabaseError> {
        let Some((cluster, _)) = self.cluster else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || cluster.stop()).await??;
        Ok(())
    }
}

fn connect(url: &DatabaseUrl) -> Result<PgConnection, DatabaseError> {
    PgConnection::establish(url.expose()).map_err(|source| DatabaseError::Connect {
        url: url.to_string(),
        source: Box::new(source),
    })
}

/// Creates the suite's database in the cluster when missing; returns the superuser's URL to it.
fn create_database(cluster: &LocalCluster) -> Result<DatabaseUrl, DatabaseError> {
    #[derive(QueryableByName)]
    struct Present {
        #[diesel(sql_type = Bool)]
        present: bool,
    }
    let maintenance: DatabaseUrl = cluster
        .superuser_url("postgres")?
        .as_str()
        .parse()
        .map_err(DatabaseError::ClusterUrl)?;
    let mut conn = connect(&maintenance)?;
    let existing: Present = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS present",
    )
    .bind::<Text, _>(DATABASE_NAME)
    .get_result(&mut conn)
    .map_err(DatabaseError::Create)?;
    if !existing.present {
        conn.batch_execute(&format!(
            "CREATE DATABASE {}",
            quote_identifier(DATABASE_NAME)
        ))
        .map_err(DatabaseError::Create)?;
        tracing::info!(database = DATABASE_NAME, "database created");
    }
    Ok(maintenance.with_database(DATABASE_NAME))
}
