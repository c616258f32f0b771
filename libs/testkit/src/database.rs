//! A fresh database per test, cloned from a template that is migrated once per build of the
//! test binary, and dropped when the test ends.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ecrm_platform::db::{
    MigrationSet, PoolOptions, migrate, provision, quote_identifier, set_role_password,
};
use ecrm_platform::{DatabaseUrl, Db, ServiceDef};

use crate::error::Error;
use crate::server::PgServer;

/// The password every service role gets in test databases. Roles are cluster-wide, so all
/// tests must agree on it; servers with trust authentication ignore it.
pub const TEST_ROLE_PASSWORD: &str = "ecrm-test-only";

const TEST_DB_PREFIX: &str = "ecrm_test_";
const TEMPLATE_PREFIX: &str = "ecrm_tpl_";
/// Marks databases made here, with their creation time, so stale ones can be found.
const COMMENT_PREFIX: &str = "ecrm testkit created ";
/// Databases left by killed test processes, or templates of older builds, are dropped after this.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A template of an earlier build is dropped once it is this old.
const REPLACED_AFTER: Duration = Duration::from_secs(15 * 60);

/// Templates this process already made sure of, by name.
static KNOWN_TEMPLATES: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Roles whose password this process already set to [`TEST_ROLE_PASSWORD`]. Roles are
/// cluster-wide: something else (an `ecrm up` on the same server) may have changed it since the
/// template was built, so each process sets it once before its first clone.
static KNOWN_ROLES: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// One test's own database, dropped (connections and all) when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    server: &'static PgServer,
    services: Vec<&'static ServiceDef>,
}

impl TestDatabase {
    /// A database holding the schemas, roles and migrations of `services`. Panics with the
    /// reason when no database can be made: the test cannot run without it.
    pub fn new(services: &[&'static ServiceDef]) -> impl Future<Output = Self> + use<> {
        let attempt = Self::try_new(services);
        async move {
            match attempt.await {
                Ok(db) => db,
                Err(error) => panic!(
                    "cannot create a test database: {}",
                    ecrm_platform::status::chain(&error)
                ),
            }
        }
    }

    /// A database with nothing in it, for tests of provisioning and migrations themselves.
    pub async fn empty() -> Self {
        Self::new(&[]).await
    }

    /// Like [`TestDatabase::new`], returning the error.
    pub fn try_new(
        services: &[&'static ServiceDef],
    ) -> impl Future<Output = Result<Self, Error>> + use<> {
        let services = services.to_vec();
        async move { tokio::task::spawn_blocking(move || Self::create(services)).await? }
    }

    fn create(services: Vec<&'static ServiceDef>) -> Result<Self, Error> {
        let server = PgServer::get()?;
        let template = if services.is_empty() {
            "template0".to_owned()
        } else {
            ensure_template(server, &services)?
        };
        let name = format!("{TEST_DB_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect(server.admin_url())?;
        // One statement a call: CREATE DATABASE cannot run in the implicit transaction of a batch.
        conn.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_identifier(&name),
            quote_identifier(&template),
        ))
        .and_then(|()| conn.batch_execute(&comment_sql(&name, None)))
        .map_err(Error::query("create the test database"))?;
        Ok(Self {
            name,
            server,
            services,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A superuser URL to this database.
    pub fn admin_url(&self) -> DatabaseUrl {
        self.server.admin_url().with_database(&self.name)
    }

    /// The URL a service connects with: its own role, this database.
    pub fn service_url(&self, def: &ServiceDef) -> DatabaseUrl {
        service_url(self.server.admin_url(), &self.name, def)
    }

    /// A pool for `def`, pinned to its schema and role, as the service itself would open it.
    pub async fn db(&self, def: &ServiceDef) -> Result<Db, Error> {
        let options = PoolOptions {
            max_size: 4,
            ..PoolOptions::default()
        };
        Ok(Db::connect(&self.service_url(def), def.schema, options).await?)
    }

    /// Creates the role and schema of `def` in this database, as a service given an admin URL
    /// does at start, under [`with_server_lock`].
    pub async fn provision(&self, def: &'static ServiceDef) -> Result<(), Error> {
        let (admin, url) = (self.admin_url(), self.service_url(def));
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            Ok(with_server_lock(|_| provision(&admin, &url, def.schema))??)
        })
        .await?
    }

    /// The services whose schemas this database was made with.
    pub fn services(&self) -> &[&'static ServiceDef] {
        &self.services
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // FORCE ends the pools the test left open. A failure only leaves a database for the
        // stale-database sweep: nothing more can be done from a destructor.
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_identifier(&self.name)
        );
        if let Ok(mut conn) = connect(self.server.admin_url())
            && let Err(error) = conn.batch_execute(&sql)
        {
            tracing::warn!(database = %self.name, %error, "cannot drop test database");
        }
    }
}

fn service_url(admin: &DatabaseUrl, database: &str, def: &ServiceDef) -> DatabaseUrl {
    admin
        .with_database(database)
        .with_credentials(&def.role(), Some(TEST_ROLE_PASSWORD))
}

fn connect(url: &DatabaseUrl) -> Result<PgConnection, Error> {
    PgConnection::establish(url.expose()).map_err(Error::Connect)
}

/// Marks `database` with its creation time and, for templates, whose template it is (a key of
/// the test binary and service set), so older builds' templates can be found and dropped.
fn comment_sql(database: &str, owner: Option<&str>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let owner = owner.map(|key| format!(" for {key}")).unwrap_or_default();
    format!(
        "COMMENT ON DATABASE {} IS '{COMMENT_PREFIX}{now}{owner}'",
        quote_identifier(database)
    )
}

/// Runs `work` while holding the harness's server-wide lock (an advisory lock taken in the
/// maintenance database, which every test process shares).
///
/// Roles are cluster-wide, and PostgreSQL fails concurrent changes to one role with "tuple
/// concurrently updated". The platform's provisioning lock covers one database only, which is
/// enough for replicas sharing a database; tests that provision one role in several databases
/// at once must take this lock around it.
pub fn with_server_lock<T>(work: impl FnOnce(&mut PgConnection) -> T) -> Result<T, Error> {
    let server = PgServer::get()?;
    let mut conn = connect(server.admin_url())?;
    let lock = ecrm_platform::db::lock_key("testkit", "server");
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(lock)
        .execute(&mut conn)
        .map_err(Error::query("take the harness lock"))?;
    let result = work(&mut conn);
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(lock)
        .execute(&mut conn)
        .map_err(Error::query("release the harness lock"))?;
    Ok(result)
}

/// The template for `services` in this build of the test binary: made on first use, under a
/// server-wide advisory lock so concurrent test processes build it once.
fn ensure_template(server: &PgServer, services: &[&'static ServiceDef]) -> Result<String, Error> {
    let (name, owner) = template_name(services)?;
    let mut known = KNOWN_TEMPLATES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if known.get_or_insert_default().contains(&name) {
        return Ok(name);
    }
    with_server_lock(|conn| {
        build_template_if_missing(server, conn, &name, &owner, services)?;
        reset_role_passwords(conn, services)
    })??;
    known.get_or_insert_default().insert(name.clone());
    Ok(name)
}

fn reset_role_passwords(
    conn: &mut PgConnection,
    services: &[&'static ServiceDef],
) -> Result<(), Error> {
    let mut known = KNOWN_ROLES.lock().unwrap_or_else(PoisonError::into_inner);
    let known = known.get_or_insert_default();
    for def in services {
        let role = def.role();
        if !known.contains(&role) {
            set_role_password(conn, &role, TEST_ROLE_PASSWORD)?;
            known.insert(role);
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

fn build_template_if_missing(
    server: &PgServer,
    conn: &mut PgConnection,
    name: &str,
    owner: &str,
    services: &[&'static ServiceDef],
) -> Result<(), Error> {
    let existing: Present = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS present",
    )
    .bind::<Text, _>(name)
    .get_result(conn)
    .map_err(Error::query("look up the template"))?;
    if existing.present {
        return Ok(());
    }
    drop_stale_databases(conn)?;
    // Built under another name and renamed at the end, so a half-built template left by a
    // killed process is never cloned.
    let building = format!("{name}_building");
    let quoted = quote_identifier(&building);
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .and_then(|()| conn.batch_execute(&format!("CREATE DATABASE {quoted} TEMPLATE template0")))
        .map_err(Error::query("create the template"))?;
    let admin = server.admin_url().with_database(&building);
    for def in services {
        let url = service_url(server.admin_url(), &building, def);
        provision(&admin, &url, def.schema)?;
        migrate(&url, def.schema, def.migrations)?;
    }
    conn.batch_execute(&format!(
        "ALTER DATABASE {} RENAME TO {}; {}",
        quote_identifier(&building),
        quote_identifier(name),
        comment_sql(name, Some(owner))
    ))
    .map_err(Error::query("publish the template"))?;
    tracing::info!(template = name, "test template ready");
    drop_replaced_templates(conn, name, owner)
}

/// Drops the templates earlier builds of this test binary made for the same services: each is
/// a whole database. One still being cloned from by a running test is left for the stale sweep.
fn drop_replaced_templates(
    conn: &mut PgConnection,
    current: &str,
    owner: &str,
) -> Result<(), Error> {
    #[derive(QueryableByName)]
    struct Replaced {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        comment: String,
    }
    let replaced: Vec<Replaced> = diesel::sql_query(
        "SELECT datname AS name, shobj_description(oid, 'pg_database') AS comment \
         FROM pg_database \
         WHERE starts_with(datname, $1) AND datname <> $2 \
           AND shobj_description(oid, 'pg_database') LIKE '%' || $3",
    )
    .bind::<Text, _>(TEMPLATE_PREFIX)
    .bind::<Text, _>(current)
    .bind::<Text, _>(format!(" for {owner}"))
    .load(conn)
    .map_err(Error::query("list replaced templates"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for template in replaced {
        // A run of the previous build may still be going and clone from it a while longer.
        let created = template
            .comment
            .strip_prefix(COMMENT_PREFIX)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|secs| secs.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) < REPLACED_AFTER.as_secs() {
            continue;
        }
        let sql = format!(
            "DROP DATABASE IF EXISTS {}",
            quote_identifier(&template.name)
        );
        if let Err(error) = conn.batch_execute(&sql) {
            tracing::debug!(database = %template.name, %error, "replaced template still in use");
        }
    }
    Ok(())
}

/// Drops test databases and templates older than [`STALE_AFTER`]: those of killed test
/// processes and of earlier builds.
fn drop_stale_databases(conn: &mut PgConnection) -> Result<(), Error> {
    #[derive(QueryableByName)]
    struct Marked {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        comment: String,
    }
    let marked: Vec<Marked> = diesel::sql_query(
        "SELECT datname AS name, shobj_description(oid, 'pg_database') AS comment \
         FROM pg_database \
         WHERE (starts_with(datname, $1) OR starts_with(datname, $2)) \
           AND shobj_description(oid, 'pg_database') IS NOT NULL",
    )
    .bind::<Text, _>(TEST_DB_PREFIX)
    .bind::<Text, _>(TEMPLATE_PREFIX)
    .load(conn)
    .map_err(Error::query("list test databases"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for database in marked {
        let Some(created) = database
            .comment
            .strip_prefix(COMMENT_PREFIX)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|secs| secs.parse::<u64>().ok())
        else {
            continue;
        };
        if now.saturating_sub(created) > STALE_AFTER.as_secs() {
            let sql = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_identifier(&database.name)
            );
            if let Err(error) = conn.batch_execute(&sql) {
                tracing::warn!(database = %database.name, %error, "cannot drop stale test database");
            }
        }
    }
    Ok(())
}

/// (`ecrm_tpl_` + a digest of this test binary's build and the services' migrations, the key of
/// this binary and service set): a rebuilt binary (new migrations embedded) gets a new template
/// and drops the one it replaces; repeated runs reuse theirs.
fn template_name(services: &[&'static ServiceDef]) -> Result<(String, String), Error> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut owner = ring::digest::Context::new(&ring::digest::SHA256);
    for def in services {
        owner.update(def.schema.as_bytes());
        owner.update(b"/");
    }
    if let Ok(exe) = std::env::current_exe() {
        context.update(exe.as_os_str().as_encoded_bytes());
        owner.update(exe.as_os_str().as_encoded_bytes());
        if let Ok(metadata) = std::fs::metadata(&exe) {
            let modified = metadata
                .modified()
                .ok()
                .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                .unwrap_or_default();
            context.update(&modified.as_nanos().to_be_bytes());
            context.update(&metadata.len().to_be_bytes());
        }
    }
    for def in services {
        context.update(def.schema.as_bytes());
        let migrations = MigrationSource::<Pg>::migrations(&MigrationSet(def.migrations))
            .map_err(Error::Migrations)?;
        for migration in migrations {
            context.update(migration.name().to_string().as_bytes());
        }
    }
    let hex = |digest: ring::digest::Digest| -> String {
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    Ok((
        format!("{TEMPLATE_PREFIX}{}", hex(context.finish())),
        hex(owner.finish()),
    ))
}
