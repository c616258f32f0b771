//! The `unsubscribes` table.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::outbound::unsubscribes;

#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = unsubscribes, check_for_backend(diesel::pg::Pg))]
pub struct UnsubscribeRow {
    pub unsubscribe_id: Uuid,
    pub subject_id: Uuid,
    pub channel: String,
    pub purpose_key: String,
    pub requested_at: DateTime<Utc>,
    pub ip_hash: Option<String>,
    pub user_agent: Option<String>,
    pub forwarded_at: Option<DateTime<Utc>>,
    pub refused_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
}

/// Inserts the unsubscribe unless one of the subject, channel and purpose still waits to be
/// forwarded; returns whether it was inserted.
pub fn insert(conn: &mut PgConnection, row: &UnsubscribeRow) -> QueryResult<bool> {
    diesel::insert_into(unsubscribes::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

/// Claims up to `limit` unsubscribes due to be forwarded for `lease_seconds`: one whose
/// forwarder dies is taken up again once the lease runs out.
pub fn claim_due(
    conn: &mut PgConnection,
    limit: i64,
    lease_seconds: f64,
) -> QueryResult<Vec<UnsubscribeRow>> {
    diesel::sql_query(
        "UPDATE unsubscribes u SET next_attempt_at = now() + make_interval(secs => $2) \
         FROM (SELECT unsubscribe_id FROM unsubscribes \
               WHERE forwarded_at IS NULL AND refused_at IS NULL AND next_attempt_at <= now() \
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due \
         WHERE u.unsubscribe_id = due.unsubscribe_id \
         RETURNING u.*",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<diesel::sql_types::Double, _>(lease_seconds)
    .load(conn)
}

/// The unsubscribe found by id, as long as it waits to be forwarded.
type Waiting = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Find<unsubscribes::table, Uuid>,
        diesel::dsl::IsNull<unsubscribes::forwarded_at>,
    >,
    diesel::dsl::IsNull<unsubscribes::refused_at>,
>;

/// The unsubscribe, waiting to be forwarded.
fn waiting(id: Uuid) -> Waiting {
    unsubscribes::table
        .find(id)
        .filter(unsubscribes::forwarded_at.is_null())
        .filter(unsubscribes::refused_at.is_null())
}

/// Marks the unsubscribe recorded by consent.
pub fn update_forwarded(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(waiting(id))
        .set((
            unsubscribes::forwarded_at.eq(diesel::dsl::now),
            unsubscribes::attempts.eq(unsubscribes::attempts + 1),
            unsubscribes::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .map(drop)
}

/// Marks the unsubscribe refused by consent: it is not tried again.
pub fn update_refused(conn: &mut PgConnection, id: Uuid, error: &str) -> QueryResult<()> {
    diesel::update(waiting(id))
        .set((
            unsubscribes::refused_at.eq(diesel::dsl::now),
            unsubscribes::attempts.eq(unsubscribes::attempts + 1),
            unsubscribes::last_error.eq(error),
        ))
        .execute(conn)
        .map(drop)
}

/// Records a failed attempt to forward the unsubscribe, to try again at `next_attempt_at`.
pub fn update_failed(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(waiting(id))
        .set((
            unsubscribes::attempts.eq(unsubscribes::attempts + 1),
            unsubscribes::last_error.eq(error),
            unsubscribes::next_attempt_at.eq(next_attempt_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Those of `subjects` who unsubscribed from `purpose` (on any channel) by a withdrawal
/// consent does not hold yet: not forwarded yet, or refused by consent. Send them nothing for
/// the purpose; once forwarded, consent's own `CheckConsent` says withdrawn.
pub fn pending_withdrawals(
    conn: &mut PgConnection,
    purpose: &str,
    subjects: &[Uuid],
) -> QueryResult<HashSet<Uuid>> {
    let mut pending = HashSet::new();
    // Bounded statements however many subjects a campaign has.
    for chunk in subjects.chunks(10_000) {
        pending.extend(
            unsubscribes::table
                .filter(unsubscribes::purpose_key.eq(purpose))
                .filter(unsubscribes::subject_id.eq_any(chunk))
                .filter(unsubscribes::forwarded_at.is_null())
                .select(unsubscribes::subject_id)
                .distinct()
                .load::<Uuid>(conn)?,
        );
    }
    Ok(pending)
}

/// The subject's unsubscribes, oldest first.
pub fn list_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<UnsubscribeRow>> {
    unsubscribes::table
        .filter(unsubscribes::subject_id.eq(subject))
        .order(unsubscribes::unsubscribe_id)
        .select(UnsubscribeRow::as_select())
        .load(conn)
}
