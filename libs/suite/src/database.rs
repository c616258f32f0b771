//! Each member's role and schema in the suite's database, migrated; and dropping a suite's
//! roles once its database is gone.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use ecrm_platform::DatabaseUrl;
use ecrm_platform::db::{provision, quote_identifier, valid_identifier};
use ring::rand::{SecureRandom, SystemRandom};

use crate::{Member, SuiteError};

/// The default role prefix: roles `ecrm_identity`, `ecrm_profiles`, ...
pub const DEFAULT_ROLE_PREFIX: &str = "ecrm";

/// Whether every member's role made with `prefix` is a name provisioning accepts.
pub(crate) fn check_role_prefix(prefix: &str) -> Result<(), SuiteError> {
    if prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && Member::ALL
            .iter()
            .all(|member| valid_identifier(&member.role(prefix)))
    {
        Ok(())
    } else {
        Err(SuiteError::RolePrefix(prefix.to_owned()))
    }
}

/// Makes sure `member`'s role and schema exist, with a fresh password for this run, and
/// applies its pending migrations; returns the URL the service connects with.
pub(crate) async fn prepare(
    admin_url: &DatabaseUrl,
    member: Member,
    role_prefix: &str,
) -> Result<DatabaseUrl, SuiteError> {
    let password = fresh_password()?;
    let url = admin_url.with_credentials(&member.role(role_prefix), Some(&password));
    let (admin, service, def) = (admin_url.clone(), url.clone(), member.def());
    tokio::task::spawn_blocking(move || provision(&admin, &service, def.schema)).await??;
    let service = url.clone();
    tokio::task::spawn_blocking(move || {
        ecrm_platform::db::migrate(&service, def.schema, def.migrations)
    })
    .await?
    .map_err(|source| SuiteError::Migrate {
        service: member.name(),
        source,
    })?;
    Ok(url)
}

/// 24 random bytes in hex: URL-safe, so it needs no escaping in the connection URL.
fn fresh_password() -> Result<String, SuiteError> {
    let mut bytes = [0_u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SuiteError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Drops the members' roles made with `role_prefix`, connecting with `admin_url` (any database
/// of the server). Roles are cluster-wide and outlive the database a suite ran in: a caller
/// that gave a suite its own prefix drops them once that database is dropped. A role that
/// still owns something anywhere on the server is refused by PostgreSQL, and that is an error
/// here; a role that does not exist is not.
///
/// Blocking: call it from a blocking context.
pub fn drop_roles(admin_url: &DatabaseUrl, role_prefix: &str) -> Result<(), SuiteError> {
    check_role_prefix(role_prefix)?;
    let mut conn =
        PgConnection::establish(admin_url.expose()).map_err(|error| SuiteError::DropRole {
            role: Member::Identity.role(role_prefix),
            source: error.into(),
        })?;
    for member in Member::ALL {
        let role = member.role(role_prefix);
        conn.batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_identifier(&role)))
            .map_err(|error| SuiteError::DropRole {
                role: role.clone(),
                source: error.into(),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_prefixes_must_make_plain_identifiers() {
        assert!(check_role_prefix(DEFAULT_ROLE_PREFIX).is_ok());
        assert!(check_role_prefix("ecrm_e2e_0123456789abcdef").is_ok());
        for bad in [
            "",
            "Ecrm",
            "1ecrm",
            "ecrm-e2e",
            "ecrm;drop",
            &"a".repeat(60),
        ] {
            assert!(
                matches!(check_role_prefix(bad), Err(SuiteError::RolePrefix(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fresh_passwords_are_long_hex_and_differ() {
        let (a, b) = (fresh_password().unwrap(), fresh_password().unwrap());
        assert_eq!(a.len(), 48);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
