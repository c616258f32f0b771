//! The `revoked_tokens` and `login_attempts` tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::attempts::Outcome;
use crate::schema::identity::{login_attempts, revoked_tokens};

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

/// The counters of one name from one source, as stored.
#[derive(Debug, Clone, Copy, Queryable)]
pub struct AttemptCounters {
    pub failures: i32,
    pub pending: i32,
    pub last_attempt_at: DateTime<Utc>,
    pub blocked_until: Option<DateTime<Utc>>,
}

/// The counters of `attempt_key`, created if missing, with its row locked until the transaction
/// ends so concurrent attempts decide one after another.
pub fn find_for_update(
    conn: &mut PgConnection,
    attempt_key: &str,
    name_key: &str,
    now: DateTime<Utc>,
) -> QueryResult<AttemptCounters> {
    diesel::insert_into(login_attempts::table)
        .values((
            login_attempts::attempt_key.eq(attempt_key),
            login_attempts::name_key.eq(name_key),
            login_attempts::last_attempt_at.eq(now),
        ))
        .on_conflict(login_attempts::attempt_key)
        .do_update()
        // A write that changes nothing, to take the row lock.
        .set(login_attempts::name_key.eq(excluded(login_attempts::name_key)))
        .returning((
            login_attempts::failures,
            login_attempts::pending,
            login_attempts::last_attempt_at,
            login_attempts::blocked_until,
        ))
        .get_result(conn)
}

/// Records one more attempt being checked.
pub fn update_start(
    conn: &mut PgConnection,
    attempt_key: &str,
    pending: i32,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(login_attempts::table.find(attempt_key))
        .set((
            login_attempts::pending.eq(pending),
            login_attempts::last_attempt_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Records how a counted attempt ended: a success clears the failures, a failure adds one,
/// an undecided one only leaves the in-flight count. Returns the failures counted now, or
/// `None` when the counters were cleared meanwhile.
pub fn update_finish(
    conn: &mut PgConnection,
    attempt_key: &str,
    outcome: Outcome,
) -> QueryResult<Option<i32>> {
    use diesel::dsl::sql;
    use diesel::sql_types::Integer;
    let failures = match outcome {
        Outcome::Succeeded => sql::<Integer>("0"),
        Outcome::Failed => sql::<Integer>("failures + 1"),
        Outcome::Undecided => sql::<Integer>("failures"),
    };
    diesel::update(login_attempts::table.find(attempt_key))
        .set((
            login_attempts::pending.eq(sql::<Integer>("GREATEST(pending - 1, 0)")),
            login_attempts::failures.eq(failures),
        ))
        .returning(login_attempts::failures)
        .get_result(conn)
        .optional()
}

/// Forgets counters nobody has used for `idle`, with no block running: a quiet day wipes a
/// name's slate.
pub fn delete_idle_attempts(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    idle: chrono::Duration,
) -> QueryResult<usize> {
    diesel::delete(
        login_attempts::table
            .filter(login_attempts::last_attempt_at.lt(now - idle))
            .filter(
                login_attempts::blocked_until
                    .is_null()
                    .or(login_attempts::blocked_until.lt(now)),
            ),
    )
    .execute(conn)
}

pub fn update_blocked_until(
    conn: &mut PgConnection,
    attempt_key: &str,
    until: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(login_attempts::table.find(attempt_key))
        .set(login_attempts::blocked_until.eq(until))
        .execute(conn)
        .map(drop)
}

/// Forgets the attempts of one name from every source: its password was reset.
pub fn delete_attempts_by_name(conn: &mut PgConnection, name_key: &str) -> QueryResult<()> {
    diesel::delete(login_attempts::table.filter(login_attempts::name_key.eq(name_key)))
        .execute(conn)
        .map(drop)
}
