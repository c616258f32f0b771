//! Runs a service's embedded migrations at start, under a PostgreSQL advisory lock, so replicas
//! starting together apply each migration exactly once.

use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::{Connection, PgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use super::{DatabaseUrl, DbError};

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("cannot reach the database to migrate schema {schema}")]
    Db {
        schema: String,
        #[source]
        source: DbError,
    },
    #[error("migration of schema {schema} failed: {message}")]
    Failed { schema: String, message: String },
}

/// A `'static` set of embedded migrations as a diesel migration source: diesel's own type is
/// neither `Copy` nor a source by reference, and service definitions are `'static` constants.
#[derive(Clone, Copy)]
pub struct MigrationSet(pub &'static EmbeddedMigrations);

impl MigrationSource<Pg> for MigrationSet {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        MigrationSource::<Pg>::migrations(self.0)
    }
}

/// A stable advisory lock key for one kind of work on one schema.
pub fn lock_key(kind: &str, schema: &str) -> i64 {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("ecrm:{kind}:{schema}").as_bytes(),
    );
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(bytes)
}

/// Applies the pending `migrations` to `schema`, connecting with `url` (the service's own
/// role). Returns the versions applied: empty when the schema was already up to date.
pub fn migrate(
    url: &DatabaseUrl,
    schema: &str,
    migrations: &'static EmbeddedMigrations,
) -> Result<Vec<String>, MigrationError> {
    let db_error = |source: DbError| MigrationError::Db {
        schema: schema.to_owned(),
        source,
    };
    let mut conn = PgConnection::establish(url.with_search_path(schema).expose())
        .map_err(|e| db_error(e.into()))?;
    let key = lock_key("migrate", schema);
    // A session lock, not a transaction lock: diesel runs each migration in a transaction of
    // its own, and the lock must cover all of them.
    conn.batch_execute(&format!("SELECT pg_advisory_lock({key})"))
        .map_err(|e| db_error(e.into()))?;
    let applied = conn
        .run_pending_migrations(MigrationSet(migrations))
        .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        .map_err(|e| MigrationError::Failed {
            schema: schema.to_owned(),
            message: e.to_string(),
        });
    let unlocked = conn
        .batch_execute(&format!("SELECT pg_advisory_unlock({key})"))
        .map_err(|e| db_error(e.into()));
    let applied = applied?;
    unlocked?;
    if applied.is_empty() {
        tracing::info!(schema, "migrations up to date");
    } else {
        tracing::info!(schema, applied = applied.len(), "migrations applied");
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_by_kind_and_schema() {
        assert_ne!(
            lock_key("migrate", "identity"),
            lock_key("migrate", "profiles")
        );
        assert_ne!(
            lock_key("migrate", "identity"),
            lock_key("provision", "identity")
        );
        assert_eq!(
            lock_key("migrate", "identity"),
            lock_key("migrate", "identity")
        );
    }
}
