//! The `revoked_tokens` and `login_failures` tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use uuid::Uuid;

use crate::schema::identity::{login_failures, revoked_tokens};

/// Records a revocation; false when the token was revoked already.
pub fn insert_revoked(
    conn: &mut PgConnection,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::expires_at.eq(expires_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|count| count > 0)
}

/// Revocations of tokens that have not expired at `now`.
pub fn list_revoked_live(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<(String, DateTime<Utc>)>> {
    revoked_tokens::table
        .filter(revoked_tokens::expires_at.gt(now))
        .select((revoked_tokens::jti, revoked_tokens::expires_at))
        .load(conn)
}

/// Forgets revocations of tokens expired before `before`: they are refused for expiry anyway.
pub fn delete_revoked_expired(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(before)))
        .execute(conn)
}

/// When logins of `principal_id` are blocked until, if they are.
pub fn find_blocked_until(
    conn: &mut PgConnection,
    principal_id: Uuid,
) -> QueryResult<Option<DateTime<Utc>>> {
    login_failures::table
        .find(principal_id)
        .select(login_failures::blocked_until)
        .first::<Option<DateTime<Utc>>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Counts one more failure; returns the consecutive failures so far.
pub fn update_record_failure(
    conn: &mut PgConnection,
    principal_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<i32> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::principal_id.eq(principal_id),
            login_failures::failures.eq(1),
            login_failures::last_failure_at.eq(now),
        ))
        .on_conflict(login_failures::principal_id)
        .do_update()
        .set((
            login_failures::failures.eq(login_failures::failures + 1),
            login_failures::last_failure_at.eq(excluded(login_failures::last_failure_at)),
        ))
        .returning(login_failures::failures)
        .get_result(conn)
}

pub fn update_blocked_until(
    conn: &mut PgConnection,
    principal_id: Uuid,
    until: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(login_failures::table.find(principal_id))
        .set(login_failures::blocked_until.eq(until))
        .execute(conn)
        .map(drop)
}

pub fn delete_failures(conn: &mut PgConnection, principal_id: Uuid) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(principal_id))
        .execute(conn)
        .map(drop)
}
