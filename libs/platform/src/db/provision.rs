//! Creates a service's role and schema when they are missing, with an administrator's
//! connection, so a fresh database is ready for the service's migrations.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use super::{DatabaseUrl, DbError};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{what} {name:?} is not a plain lower-case sql identifier")]
    BadIdentifier { what: &'static str, name: String },
    #[error("the service database url names no user to create")]
    NoUser,
    #[error("cannot store the role's password")]
    Password(#[from] super::scram::ScramError),
    #[error("cannot set the password of role {role}")]
    RolePassword {
        role: String,
        #[source]
        source: DbError,
    },
    #[error("cannot provision schema {schema}")]
    Db {
        schema: String,
        #[source]
        source: DbError,
    },
}

/// True for names we accept as roles and schemas: lower-case ASCII letters, digits and `_`,
/// not starting with a digit, at most 63 bytes (PostgreSQL's limit).
pub fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// Quotes an identifier already checked by [`valid_identifier`].
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Makes sure the role that `service_url` connects as exists (with the URL's password, when
/// it has one), and that `schema` exists and belongs to it. `admin_url` must connect as a
/// superuser, or as a role with CREATEROLE that is a member of the service role.
///
/// Safe to run from several processes at once: the schema is created under a transaction-level
/// advisory lock, and a role created concurrently by another database's provisioning (roles
/// are cluster-wide) is taken as already there.
pub fn provision(
    admin_url: &DatabaseUrl,
    service_url: &DatabaseUrl,
    schema: &str,
) -> Result<(), ProvisionError> {
    let role = service_url.username();
    if role.is_empty() {
        return Err(ProvisionError::NoUser);
    }
    for (what, name) in [("role", role), ("schema", schema)] {
        if !valid_identifier(name) {
            return Err(ProvisionError::BadIdentifier {
                what,
                name: name.to_owned(),
            });
        }
    }
    let db_error = |source: DbError| ProvisionError::Db {
        schema: schema.to_owned(),
        source,
    };
    let mut conn = PgConnection::establish(admin_url.expose()).map_err(|e| db_error(e.into()))?;
    let quoted_role = quote_identifier(role);
    let quoted_schema = quote_identifier(schema);
    let quoted_db = quote_identifier(service_url.database());
    // One lock for the whole database: every service's provisioning updates the same
    // pg_database row (GRANT CONNECT), and concurrent updates of a catalog row fail.
    let lock_key = super::migrate::lock_key("provision", "database");
    let sql = format!(
        r#"
        BEGIN;
        SELECT pg_advisory_xact_lock({lock_key});
        DO $$ BEGIN
            CREATE ROLE {quoted_role} LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$;
        GRANT CONNECT ON DATABASE {quoted_db} TO {quoted_role};
        -- Roles meet only in their own schemas (PostgreSQL 14 and older let anyone create in public).
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        CREATE SCHEMA IF NOT EXISTS {quoted_schema} AUTHORIZATION {quoted_role};
        COMMIT;
        "#
    );
    conn.batch_execute(&sql).map_err(|e| db_error(e.into()))?;
    if let Some(password) = service_url.password() {
        set_role_password(&mut conn, role, &percent_decode(password))?;
    }
    Ok(())
}

/// Sets `role`'s password as a SCRAM-SHA-256 verifier computed here, so the password itself is
/// never in SQL text (which the server logs when a statement fails).
pub fn set_role_password(
    conn: &mut PgConnection,
    role: &str,
    password: &str,
) -> Result<(), ProvisionError> {
    if !valid_identifier(role) {
        return Err(ProvisionError::BadIdentifier {
            what: "role",
            name: role.to_owned(),
        });
    }
    let verifier = super::scram::verifier(password)?;
    conn.batch_execute(&format!(
        "ALTER ROLE {} WITH LOGIN PASSWORD {}",
        quote_identifier(role),
        quote_literal(&verifier)
    ))
    .map_err(|e| ProvisionError::RolePassword {
        role: role.to_owned(),
        source: e.into(),
    })
}

/// The password as the server should store it: URLs carry it percent-encoded.
fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain_lower_case_names() {
        assert!(valid_identifier("identity"));
        assert!(valid_identifier("ecrm_identity"));
        assert!(!valid_identifier("Identity"));
        assert!(!valid_identifier("1abc"));
        assert!(!valid_identifier("a;drop"));
        assert!(!valid_identifier(""));
        assert!(!valid_identifier(&"a".repeat(64)));
    }

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
