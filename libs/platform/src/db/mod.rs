//! The service's PostgreSQL: a diesel r2d2 pool pinned to the service's schema and role, and
//! the one way to use it from async code.

mod error;
mod migrate;
mod provision;
mod scram;
mod url;

use std::time::Duration;

use diesel::PgConnection;
use diesel::connection::Connection;
use diesel::r2d2::{ConnectionManager, Pool};
use tracing::Instrument;

pub use self::error::DbError;
pub use self::migrate::{MigrationError, MigrationSet, lock_key, migrate};
pub use self::provision::{
    ProvisionError, provision, quote_identifier, set_role_password, valid_identifier,
};
pub use self::scram::ScramError;
pub use self::url::{DatabaseUrl, DatabaseUrlError, DatabaseUrlParser};

/// Blocking threads tokio may start; the pool must leave room for other blocking work.
pub const BLOCKING_THREAD_BUDGET: u32 = 512;

/// Sizing of a service's connection pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Most connections open at once; at most [`BLOCKING_THREAD_BUDGET`] / 2.
    pub max_size: u32,
    /// How long a unit of work waits for a free connection before failing UNAVAILABLE.
    pub connect_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A service's database: every unit of work checks out one connection, runs in one
/// transaction, on one blocking thread.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<PgConnection>>,
    schema: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        f.debug_struct("Db")
            .field("schema", &self.schema)
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish()
    }
}

impl Db {
    /// Opens a pool to `url` with `search_path` pinned to `schema`. Fails when no connection can
    /// be made within the timeout, so a misconfigured service stops at start, not at first use.
    pub async fn connect(
        url: &DatabaseUrl,
        schema: &str,
        options: PoolOptions,
    ) -> Result<Self, DbError> {
        let manager = ConnectionManager::<PgConnection>::new(url.with_search_path(schema).expose());
        let builder = Pool::builder()
            .max_size(options.max_size)
            .min_idle(Some(1))
            .connection_timeout(options.connect_timeout)
            // A failed query marks its connection broken; probing every checkout would cost a
            // round trip on every unit of work.
            .test_on_check_out(false);
        let pool = tokio::task::spawn_blocking(move || builder.build(manager))
            .await
            .map_err(|_| DbError::Panicked)??;
        Ok(Self {
            pool,
            schema: schema.to_owned(),
        })
    }

    /// The schema every connection is pinned to.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Runs `work` in one transaction on a pooled connection, on a blocking thread, inside the
    /// caller's tracing span. The transaction commits when `work` returns `Ok` and rolls back
    /// otherwise. A panic in `work` becomes [`DbError::Panicked`] rather than taking the
    /// service down.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut pooled = pool.get().map_err(DbError::from)?;
            let conn: &mut PgConnection = &mut pooled;
            conn.transaction(work)
        });
        match task.in_current_span().await {
            Ok(result) => result,
            Err(_) => Err(E::from(DbError::Panicked)),
        }
    }
}
