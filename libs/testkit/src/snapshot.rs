//! Proves that every migration's `down.sql` reverts its `up.sql`, by comparing catalog
//! snapshots of the service's schema before `up` and after `down`.

use std::collections::BTreeSet;

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use ecrm_platform::db::MigrationSet;
use ecrm_platform::{DatabaseUrl, ServiceDef};

use crate::database::TestDatabase;
use crate::error::Error;

/// Everything a migration can change in one schema, one sorted line per object: relations and
/// their privileges, columns, constraints, indexes, types, functions, triggers, views,
/// sequences, policies, and the schema's own privileges. diesel's bookkeeping table is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSnapshot(BTreeSet<String>);

const SNAPSHOT_SQL: &str = r"
WITH ns AS (SELECT oid, nspacl FROM pg_namespace WHERE nspname = $1),
rel AS (
    SELECT c.* FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
    WHERE NOT starts_with(c.relname, '__diesel_schema_migrations')
)
SELECT 'schema acl ' || coalesce((SELECT nspacl::text FROM ns), '') AS line
UNION ALL
SELECT 'relation ' || relname || ' kind=' || relkind::text || ' acl=' || coalesce(relacl::text, '')
    || ' rls=' || relrowsecurity::text FROM rel
UNION ALL
SELECT 'column ' || r.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
    || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
    || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
    || ' acl=' || coalesce(a.attacl::text, '')
FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || coalesce(r.relname, t.typname, '') || '.' || con.conname || ' '
    || pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN ns ON con.connamespace = ns.oid
LEFT JOIN pg_class r ON r.oid = con.conrelid
LEFT JOIN pg_type t ON t.oid = con.contypid
WHERE r.relname IS NULL OR NOT starts_with(r.relname, '__diesel_schema_migrations')
UNION ALL
SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes
WHERE schemaname = $1 AND NOT starts_with(tablename, '__diesel_schema_migrations')
UNION ALL
SELECT 'type ' || t.typname || ' ' || t.typtype::text || coalesce(' ' || (
    SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e
    WHERE e.enumtypid = t.oid), '') || ' acl=' || coalesce(t.typacl::text, '')
FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
WHERE t.typtype IN ('e', 'd', 'r', 'm')
   OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
UNION ALL
SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
    || md5(pg_get_functiondef(p.oid)) || ' acl=' || coalesce(p.proacl::text, '')
FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid WHERE p.prokind IN ('f', 'p')
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN rel r ON t.tgrelid = r.oid WHERE NOT t.tgisinternal
UNION ALL
SELECT 'view ' || viewname || ' ' || md5(definition) FROM pg_views WHERE schemaname = $1
UNION ALL
SELECT 'matview ' || matviewname || ' ' || md5(definition) FROM pg_matviews
WHERE schemaname = $1
UNION ALL
SELECT 'sequence ' || sequencename || ' ' || data_type::text || ' ' || start_value || ' '
    || increment_by || ' ' || cycle::text FROM pg_sequences WHERE schemaname = $1
UNION ALL
SELECT 'policy ' || tablename || '.' || policyname || ' ' || cmd || ' '
    || coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies
WHERE schemaname = $1
UNION ALL
SELECT 'default acl ' || defaclobjtype::text || ' ' || defaclacl::text
FROM pg_default_acl JOIN ns ON defaclnamespace = ns.oid
";

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

impl SchemaSnapshot {
    /// Reads the catalog of `schema` through `conn`.
    pub fn take(conn: &mut PgConnection, schema: &str) -> Result<Self, diesel::result::Error> {
        let lines: Vec<Line> = diesel::sql_query(SNAPSHOT_SQL)
            .bind::<Text, _>(schema)
            .load(conn)?;
        Ok(Self(lines.into_iter().map(|l| l.line).collect()))
    }

    /// The lines only one side has, each prefixed `- ` (only in `self`) or `+ ` (only in `other`).
    pub fn diff(&self, other: &Self) -> Vec<String> {
        let removed = self.0.difference(&other.0).map(|l| format!("- {l}"));
        let added = other.0.difference(&self.0).map(|l| format!("+ {l}"));
        removed.chain(added).collect()
    }

    /// Number of objects seen.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A migration whose `down.sql` does not bring the schema back to what it was before `up.sql`,
/// or after which `up.sql` does not apply again to the same result.
#[derive(Debug, thiserror::Error)]
#[error("migration {migration}: {problem}:\n{}", diff.join("\n"))]
pub struct NotReverted {
    pub migration: String,
    pub problem: &'static str,
    pub diff: Vec<String>,
}

/// Applies `migrations` to `schema` one at a time; for each, checks that reverting it restores
/// the schema snapshot taken before it, and that applying it again gives the same schema as
/// the first time. Connects with `url` (the service's own role, so privileges are as in
/// production). The schema must exist and have no migration applied yet.
pub fn check_migrations_revert(
    url: &DatabaseUrl,
    schema: &str,
    migrations: &'static EmbeddedMigrations,
) -> Result<Result<(), NotReverted>, Error> {
    let source = MigrationSet(migrations);
    let mut conn =
        PgConnection::establish(url.with_search_path(schema).expose()).map_err(Error::Connect)?;
    let count = MigrationSource::<Pg>::migrations(&source)
        .map_err(Error::Migrations)?
        .len();
    let snapshot = |conn: &mut PgConnection| {
        SchemaSnapshot::take(conn, schema).map_err(Error::query("snapshot the schema"))
    };
    for _ in 0..count {
        let before = snapshot(&mut conn)?;
        let version = conn.run_next_migration(source).map_err(Error::Migrations)?;
        let migration = version.to_string();
        let after_up = snapshot(&mut conn)?;
        conn.revert_last_migration(source)
            .map_err(Error::Migrations)?;
        let after_down = snapshot(&mut conn)?;
        let diff = before.diff(&after_down);
        if !diff.is_empty() {
            return Ok(Err(NotReverted {
                migration,
                problem: "down.sql does not restore the schema as it was before up.sql",
                diff,
            }));
        }
        conn.run_next_migration(source).map_err(Error::Migrations)?;
        let diff = after_up.diff(&snapshot(&mut conn)?);
        if !diff.is_empty() {
            return Ok(Err(NotReverted {
                migration,
                problem: "up.sql gives another schema when applied again after down.sql",
                diff,
            }));
        }
    }
    Ok(Ok(()))
}

/// Panics, naming the migration and the difference, unless every migration of `def` reverts
/// cleanly ([`check_migrations_revert`]) on a fresh database.
pub async fn assert_migrations_revert(def: &'static ServiceDef) {
    let database = TestDatabase::empty().await;
    if let Err(error) = database.provision(def).await {
        panic!(
            "cannot provision {}: {}",
            def.name,
            ecrm_platform::status::chain(&error)
        );
    }
    let url = database.service_url(def);
    let result = tokio::task::spawn_blocking(move || {
        check_migrations_revert(&url, def.schema, def.migrations)
    })
    .await;
    match result {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(not_reverted))) => panic!("{not_reverted}"),
        Ok(Err(error)) => panic!(
            "cannot check the migrations of {}: {}",
            def.name,
            ecrm_platform::status::chain(&error)
        ),
        Err(error) => panic!("migration check task failed: {error}"),
    }
}
