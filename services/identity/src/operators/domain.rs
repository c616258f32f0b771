//! Operators: the people who run the suite, with roles that grant fixed scopes.

use chrono::{DateTime, Utc};
use diesel::RunQueryDsl;
use ecrm_auth::{OperatorRole, Scopes};
use ecrm_crypto::{BlindIndexKey, Secret};
use ecrm_platform::{Db, DbError};
use uuid::Uuid;

use super::store::{self, NewOperator, OperatorRow};
use crate::credentials::{self, HashPool};
use crate::error::IdentityError;
use crate::sessions::domain as sessions;
use ecrm_platform::paging::Page;

/// The operator `ecrm up` and a first start create.
pub const BOOTSTRAP_ADMIN: &str = "admin";
const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=64;

#[derive(Debug, Clone)]
pub struct Operator {
    pub id: Uuid,
    pub username: String,
    pub roles: Vec<OperatorRole>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

fn roles_of(row: &OperatorRow) -> Vec<OperatorRole> {
    row.roles
        .iter()
        .flatten()
        .filter_map(|name| OperatorRole::parse(name))
        .collect()
}

impl From<OperatorRow> for Operator {
    fn from(row: OperatorRow) -> Self {
        Self {
            roles: roles_of(&row),
            id: row.id,
            username: row.username,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        }
    }
}

/// What a login needs to know about an operator.
#[derive(Debug)]
pub struct LoginOperator {
    pub id: Uuid,
    pub scopes: Scopes,
    pub disabled: bool,
    pub password_hash: Secret<String>,
    pub password_changed_at: DateTime<Utc>,
}

impl From<OperatorRow> for LoginOperator {
    fn from(row: OperatorRow) -> Self {
        Self {
            id: row.id,
            scopes: roles_of(&row)
                .into_iter()
                .map(OperatorRole::scopes)
                .fold(Scopes::empty(), Scopes::union),
            disabled: row.disabled_at.is_some(),
            password_hash: Secret::new(row.password_hash),
            password_changed_at: row.password_changed_at,
        }
    }
}

/// An operator named by id or username.
#[derive(Debug, Clone)]
pub enum OperatorRef {
    Id(Uuid),
    Username(String),
}

impl OperatorRef {
    pub fn parse(value: &str) -> Result<Self, IdentityError> {
        if value.is_empty() {
            return Err(IdentityError::invalid("operator", "required"));
        }
        match Uuid::parse_str(value) {
            Ok(id) => Ok(Self::Id(id)),
            // Only a well-formed username can name an operator.
            Err(_) if check_username(value).is_ok() => Ok(Self::Username(value.to_owned())),
            Err(_) => Err(IdentityError::invalid(
                "operator",
                "an operator's id or username",
            )),
        }
    }
}

pub fn check_username(username: &str) -> Result<(), IdentityError> {
    let valid = USERNAME_CHARS.contains(&username.chars().count())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'));
    if valid {
        Ok(())
    } else {
        Err(IdentityError::invalid(
            "username",
            "3 to 64 of A-Z, a-z, 0-9, '.', '_', '-', '@', '+'",
        ))
    }
}

pub fn check_roles(roles: &[OperatorRole]) -> Result<(), IdentityError> {
    if roles.is_empty() {
        Err(IdentityError::invalid("roles", "at least one role"))
    } else {
        Ok(())
    }
}

fn check_password(field: &'static str, password: &Secret<String>) -> Result<(), IdentityError> {
    credentials::check_password(password.expose())
        .map_err(|reason| IdentityError::invalid(field, reason))
}

fn find(
    conn: &mut diesel::PgConnection,
    reference: &OperatorRef,
) -> Result<OperatorRow, IdentityError> {
    match reference {
        OperatorRef::Id(id) => store::find_by_id(conn, *id)?,
        OperatorRef::Username(username) => store::find_by_username(conn, username)?,
    }
    .ok_or(IdentityError::NotFound("operator"))
}

pub struct Operators {
    db: Db,
    hashing: HashPool,
    /// Keys login attempt counters, to lift an operator's blocks when its password is reset.
    attempts: BlindIndexKey,
}

impl std::fmt::Debug for Operators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operators").finish_non_exhaustive()
    }
}

impl Operators {
    pub fn new(db: Db, hashing: HashPool, attempts: BlindIndexKey) -> Self {
        Self {
            db,
            hashing,
            attempts,
        }
    }

    async fn hash(&self, password: &Secret<String>) -> Result<String, IdentityError> {
        self.hashing.hash(password).await
    }

    pub async fn create(
        &self,
        username: String,
        password: Secret<String>,
        roles: Vec<OperatorRole>,
    ) -> Result<Operator, IdentityError> {
        check_username(&username)?;
        check_password("password", &password)?;
        check_roles(&roles)?;
        let hash = self.hash(&password).await?;
        let operator = self
            .db
            .run(move |conn| insert(conn, &username, &hash, &roles))
            .await?;
        tracing::info!(operator.id = %operator.id, "operator created");
        Ok(operator)
    }

    pub async fn list(
        &self,
        page: Page,
    ) -> Result<(Vec<Operator>, ecrm_proto::ecrm::common::v1::PageResponse), IdentityError> {
        self.db
            .run(move |conn| {
                let rows = store::list_after(conn, page.after, page.limit())?;
                let (rows, next) = page.finish(rows, |row| row.id);
                Ok((rows.into_iter().map(Operator::from).collect(), next))
            })
            .await
    }

    /// Replaces the password, lifts any login block and ends the operator's sessions: whoever
    /// logged in with the old password must log in again.
    pub async fn set_password(
        &self,
        reference: OperatorRef,
        password: Secret<String>,
    ) -> Result<(), IdentityError> {
        check_password("password", &password)?;
        let hash = self.hash(&password).await?;
        let attempts = self.attempts.clone();
        let (id, sessions_ended) = self
            .db
            .run(move |conn| {
                let operator = find(conn, &reference)?;
                let now = Utc::now();
                store::update_password(conn, operator.id, &hash, now)?;
                let name_key = attempts.index(format!("operator:{}", operator.username).as_bytes());
                crate::tokens::store::delete_attempts_by_name(conn, &name_key)?;
                let ended = sessions::end_all_of(conn, operator.id, now)?;
                Ok::<_, IdentityError>((operator.id, ended))
            })
            .await?;
        sessions::log_ended(id, sessions_ended);
        Ok(())
    }

    /// Disables the operator and ends its sessions.
    pub async fn disable(&self, reference: OperatorRef) -> Result<Operator, IdentityError> {
        let (operator, sessions_ended) = self
            .db
            .run(move |conn| {
                let id = find(conn, &reference)?.id;
                let now = Utc::now();
                store::update_disable(conn, id, now)?;
                let ended = sessions::end_all_of(conn, id, now)?;
                Ok::<_, IdentityError>((Operator::from(find(conn, &OperatorRef::Id(id))?), ended))
            })
            .await?;
        tracing::info!(operator.id = %operator.id, "operator disabled");
        sessions::log_ended(operator.id, sessions_ended);
        Ok(operator)
    }

    /// On a store with no operator at all, creates `admin` with `password`, or a generated one
    /// returned to be shown once. Several replicas starting together create one admin.
    pub async fn bootstrap_admin(
        &self,
        password: Option<Secret<String>>,
    ) -> Result<Option<(Operator, Secret<String>)>, IdentityError> {
        let password = match password {
            Some(password) => {
                check_password("bootstrap admin password", &password)?;
                password
            }
            None => credentials::new_password()?,
        };
        let hash = self.hash(&password).await?;
        let created = self
            .db
            .run(move |conn| {
                let key = ecrm_platform::db::lock_key("identity", "bootstrap");
                diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                    .bind::<diesel::sql_types::BigInt, _>(key)
                    .execute(conn)?;
                if store::count(conn)? > 0 {
                    return Ok(None);
                }
                insert(conn, BOOTSTRAP_ADMIN, &hash, &[OperatorRole::Admin]).map(Some)
            })
            .await?;
        if let Some(admin) = &created {
            tracing::info!(operator.id = %admin.id, "bootstrap admin operator created");
        }
        Ok(created.map(|admin| (admin, password)))
    }

    /// The operator a username names, for a login.
    pub fn find_login(
        conn: &mut diesel::PgConnection,
        username: &str,
    ) -> Result<Option<LoginOperator>, DbError> {
        Ok(store::find_by_username(conn, username)?.map(LoginOperator::from))
    }

    /// The operator `id` as it is now, for a session's refresh.
    pub fn find_principal(
        conn: &mut diesel::PgConnection,
        id: Uuid,
    ) -> Result<Option<LoginOperator>, DbError> {
        Ok(store::find_by_id(conn, id)?.map(LoginOperator::from))
    }
}

fn insert(
    conn: &mut diesel::PgConnection,
    username: &str,
    hash: &str,
    roles: &[OperatorRole],
) -> Result<Operator, IdentityError> {
    let id = Uuid::now_v7();
    store::insert(
        conn,
        &NewOperator {
            id,
            username,
            password_hash: hash,
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        },
    )
    .map_err(|error| match DbError::from(error) {
        DbError::UniqueViolation { .. } => IdentityError::AlreadyExists("operator"),
        other => IdentityError::Db(other),
    })?;
    Ok(Operator::from(find(conn, &OperatorRef::Id(id))?))
}
