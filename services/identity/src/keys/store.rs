//! The `signing_keys` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::identity::signing_keys;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct SigningKeyRow {
    pub kid: String,
    pub state: String,
    pub public_key: Vec<u8>,
    pub private_key_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub verify_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub state: &'a str,
    pub public_key: &'a [u8],
    pub private_key_sealed: &'a [u8],
    pub activated_at: Option<DateTime<Utc>>,
}

pub fn insert(conn: &mut PgConnection, key: &NewSigningKey<'_>) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(key)
        .execute(conn)
        .map(drop)
}

pub fn find_by_state(conn: &mut PgConnection, state: &str) -> QueryResult<Option<SigningKeyRow>> {
    signing_keys::table
        .filter(signing_keys::state.eq(state))
        .select(SigningKeyRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_kid(conn: &mut PgConnection, kid: &str) -> QueryResult<Option<SigningKeyRow>> {
    signing_keys::table
        .find(kid)
        .select(SigningKeyRow::as_select())
        .first(conn)
        .optional()
}

/// Every key, newest first.
pub fn list_all(conn: &mut PgConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .order(signing_keys::created_at.desc())
        .select(SigningKeyRow::as_select())
        .load(conn)
}

/// The keys a verifier must know at `now`: next, active, and retired ones still verifying.
pub fn list_published(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .filter(
            signing_keys::state
                .eq_any(["next", "active"])
                .or(signing_keys::verify_until.gt(now)),
        )
        .order(signing_keys::created_at.desc())
        .select(SigningKeyRow::as_select())
        .load(conn)
}

pub fn update_retire(
    conn: &mut PgConnection,
    kid: &str,
    now: DateTime<Utc>,
    verify_until: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(signing_keys::table.find(kid))
        .set((
            signing_keys::state.eq("retired"),
            signing_keys::retired_at.eq(now),
            signing_keys::verify_until.eq(verify_until),
        ))
        .execute(conn)
        .map(drop)
}

pub fn update_activate(conn: &mut PgConnection, kid: &str, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(signing_keys::table.find(kid))
        .set((
            signing_keys::state.eq("active"),
            signing_keys::activated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}
