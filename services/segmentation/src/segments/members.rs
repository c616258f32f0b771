//! The `memberships`, `membership_checks` and `membership_events` tables, and the sweep
//! columns of `segments`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text, Timestamptz, Uuid as SqlUuid};
use ecrm_platform::feed::FeedCursor;
use uuid::Uuid;

use crate::schema::segmentation::{customers, membership_checks, memberships, segments};

/// Why a customer joined or left a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The rule on the customer's facts, or the date.
    Evaluated,
    /// Processing restricted.
    Restricted,
    /// Objected to profiling.
    Objected,
    /// Merged into another customer, who is evaluated in their own right.
    Merged,
    /// Erased.
    Erased,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evaluated => "evaluated",
            Self::Restricted => "restricted",
            Self::Objected => "objected",
            Self::Merged => "merged",
            Self::Erased => "erased",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Evaluated,
            Self::Restricted,
            Self::Objected,
            Self::Merged,
            Self::Erased,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == value)
    }
}

/// Which of `pairs` (segment, subject) are members now.
pub fn members_among(
    conn: &mut PgConnection,
    segment_names: &[String],
    subjects: &[Uuid],
) -> QueryResult<HashSet<(String, Uuid)>> {
    Ok(memberships::table
        .filter(memberships::segment.eq_any(segment_names))
        .filter(memberships::subject_id.eq_any(subjects))
        .select((memberships::segment, memberships::subject_id))
        .load::<(String, Uuid)>(conn)?
        .into_iter()
        .collect())
}

/// Adds the members, each with a join event.
pub fn join(conn: &mut PgConnection, pairs: &[(String, Uuid)], reason: Reason) -> QueryResult<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let (names, subjects): (Vec<String>, Vec<Uuid>) = pairs.iter().cloned().unzip();
    diesel::sql_query(
        "WITH joined AS ( \
           INSERT INTO memberships (segment, subject_id, joined_at) \
           SELECT * , now() FROM unnest($1::text[], $2::uuid[]) \
           ON CONFLICT DO NOTHING RETURNING segment, subject_id) \
         INSERT INTO membership_events (segment, subject_id, joined, reason) \
         SELECT segment, subject_id, true, $3 FROM joined",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Array<SqlUuid>, _>(subjects)
    .bind::<Text, _>(reason.as_str())
    .execute(conn)
    .map(drop)
}

/// Removes the members, each with a leave event giving `reason`.
pub fn leave(conn: &mut PgConnection, pairs: &[(String, Uuid, Reason)]) -> QueryResult<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
    let subjects: Vec<Uuid> = pairs.iter().map(|p| p.1).collect();
    let reasons: Vec<&str> = pairs.iter().map(|p| p.2.as_str()).collect();
    diesel::sql_query(
        "WITH gone AS ( \
           DELETE FROM memberships m USING unnest($1::text[], $2::uuid[], $3::text[]) \
             AS p(segment, subject_id, reason) \
           WHERE m.segment = p.segment AND m.subject_id = p.subject_id \
           RETURNING m.segment, m.subject_id, p.reason) \
         INSERT INTO membership_events (segment, subject_id, joined, reason) \
         SELECT segment, subject_id, false, reason FROM gone",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Array<SqlUuid>, _>(subjects)
    .bind::<Array<Text>, _>(reasons)
    .execute(conn)
    .map(drop)
}

/// Schedules the next evaluation of each of `scheduled`, replacing any earlier one, and
/// cancels those of `unscheduled`, in one statement.
pub fn reschedule(
    conn: &mut PgConnection,
    scheduled: &[(String, Uuid, DateTime<Utc>)],
    unscheduled: &[(String, Uuid)],
) -> QueryResult<()> {
    if scheduled.is_empty() && unscheduled.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = scheduled.iter().map(|c| c.0.as_str()).collect();
    let subjects: Vec<Uuid> = scheduled.iter().map(|c| c.1).collect();
    let due: Vec<DateTime<Utc>> = scheduled.iter().map(|c| c.2).collect();
    let (gone_names, gone_subjects): (Vec<String>, Vec<Uuid>) = unscheduled.iter().cloned().unzip();
    diesel::sql_query(
        "WITH gone AS ( \
           DELETE FROM membership_checks c USING unnest($4::text[], $5::uuid[]) \
             AS p(segment, subject_id) \
           WHERE c.segment = p.segment AND c.subject_id = p.subject_id) \
         INSERT INTO membership_checks (segment, subject_id, due_at) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[]) \
         ON CONFLICT (segment, subject_id) DO UPDATE SET due_at = excluded.due_at",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Array<SqlUuid>, _>(subjects)
    .bind::<Array<Timestamptz>, _>(due)
    .bind::<Array<Text>, _>(gone_names)
    .bind::<Array<SqlUuid>, _>(gone_subjects)
    .execute(conn)
    .map(drop)
}

/// Takes the subject out of every segment, with `reason`, and cancels its evaluations. For
/// an erasure, its earlier joins and leaves are deleted first, so only the leaves it caused
/// remain: they name the subject by id alone, and tell watchers to drop it.
pub fn forget(conn: &mut PgConnection, subject: Uuid, reason: Reason) -> QueryResult<()> {
    if reason == Reason::Erased {
        diesel::sql_query(
            "DELETE FROM membership_events WHERE subject_id = $1 AND reason <> 'erased'",
        )
        .bind::<SqlUuid, _>(subject)
        .execute(conn)?;
    }
    let segments: Vec<String> = memberships::table
        .filter(memberships::subject_id.eq(subject))
        .select(memberships::segment)
        .load(conn)?;
    let pairs: Vec<(String, Uuid, Reason)> = segments
        .into_iter()
        .map(|segment| (segment, subject, reason))
        .collect();
    leave(conn, &pairs)?;
    diesel::delete(membership_checks::table.filter(membership_checks::subject_id.eq(subject)))
        .execute(conn)
        .map(drop)
}

/// Locks and returns up to `limit` evaluations due by `now`, skipping those of customers
/// another transaction is changing (it evaluates them, or they stay due).
pub fn take_due_checks(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<(String, Uuid)>> {
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = Text)]
        segment: String,
        #[diesel(sql_type = SqlUuid)]
        subject_id: Uuid,
    }
    let due: Vec<Due> = diesel::sql_query(
        "SELECT c.segment, c.subject_id FROM membership_checks c \
           JOIN customers u ON u.subject_id = c.subject_id \
         WHERE c.due_at <= $1 \
         ORDER BY c.due_at LIMIT $2 \
         FOR UPDATE OF c, u SKIP LOCKED",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    Ok(due.into_iter().map(|d| (d.segment, d.subject_id)).collect())
}

/// When the earliest scheduled evaluation is due, if any is.
pub fn next_due(conn: &mut PgConnection) -> QueryResult<Option<DateTime<Utc>>> {
    membership_checks::table
        .select(diesel::dsl::min(membership_checks::due_at))
        .first(conn)
}

/// A segment being swept, and where its sweep is.
#[derive(Debug, Clone, Queryable)]
pub struct Sweep {
    pub segment: String,
    pub after: Option<Uuid>,
}

/// A segment whose sweep is not finished, locked for this transaction; none when every
/// sweep is done or taken.
pub fn take_sweep(conn: &mut PgConnection) -> QueryResult<Option<Sweep>> {
    segments::table
        .filter(segments::sweeping.eq(true))
        .order(segments::created_at)
        .select((segments::name, segments::sweep_after))
        .for_update()
        .skip_locked()
        .first(conn)
        .optional()
        .map(|row| row.map(|(segment, after)| Sweep { segment, after }))
}

/// The next `limit` customers after `after`, in subject order, each locked, and the last
/// subject read (locked or not). Customers another transaction is changing are returned
/// apart: they cannot be evaluated now.
pub fn lock_customers_after(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<(Vec<Uuid>, Vec<Uuid>)> {
    let page: Vec<Uuid> = customers::table
        .filter(customers::subject_id.gt(after.unwrap_or(Uuid::nil())))
        .order(customers::subject_id)
        .limit(limit)
        .select(customers::subject_id)
        .load(conn)?;
    let locked: HashSet<Uuid> = customers::table
        .filter(customers::subject_id.eq_any(&page))
        .select(customers::subject_id)
        .for_update()
        .skip_locked()
        .load::<Uuid>(conn)?
        .into_iter()
        .collect();
    Ok(page.into_iter().partition(|s| locked.contains(s)))
}

/// Moves the sweep past `last`, or ends it (the segment is populated from then on).
pub fn advance_sweep(
    conn: &mut PgConnection,
    segment: &str,
    last: Option<Uuid>,
) -> QueryResult<()> {
    match last {
        Some(last) => diesel::update(segments::table.find(segment))
            .set(segments::sweep_after.eq(last))
            .execute(conn)
            .map(drop),
        None => diesel::sql_query(
            "UPDATE segments SET sweeping = false, sweep_after = NULL, \
               populated_at = COALESCE(populated_at, now()) WHERE name = $1",
        )
        .bind::<Text, _>(segment)
        .execute(conn)
        .map(drop),
    }
}

/// Starts the sweep again of every segment reading one of `fields`.
pub fn restart_sweeps(conn: &mut PgConnection, fields: &[&str]) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE segments SET sweeping = true, sweep_after = NULL WHERE fields && $1::text[]",
    )
    .bind::<Array<Text>, _>(fields)
    .execute(conn)
}

/// A page of a segment's members, in subject order, after `after`.
pub fn list_members(
    conn: &mut PgConnection,
    segment: &str,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<(Uuid, DateTime<Utc>)>> {
    memberships::table
        .filter(memberships::segment.eq(segment))
        .filter(memberships::subject_id.gt(after.unwrap_or(Uuid::nil())))
        .order(memberships::subject_id)
        .limit(limit)
        .select((memberships::subject_id, memberships::joined_at))
        .load(conn)
}

/// How many members the segment has.
pub fn count_members(conn: &mut PgConnection, segment: &str) -> QueryResult<i64> {
    memberships::table
        .filter(memberships::segment.eq(segment))
        .count()
        .get_result(conn)
}

/// The segments the subject is in, with when it joined.
pub fn list_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<(String, DateTime<Utc>)>> {
    memberships::table
        .filter(memberships::subject_id.eq(subject))
        .order(memberships::segment)
        .select((memberships::segment, memberships::joined_at))
        .load(conn)
}

/// The position of the latest change every reader can see: all changes up to it are
/// committed, and reflected in whatever is read after.
pub fn last_event(conn: &mut PgConnection) -> QueryResult<FeedCursor> {
    #[derive(QueryableByName)]
    struct Position {
        #[diesel(sql_type = BigInt)]
        tx: i64,
        #[diesel(sql_type = BigInt)]
        seq: i64,
    }
    let last: Option<Position> = diesel::sql_query(
        "SELECT tx::text::bigint AS tx, seq FROM membership_events \
         WHERE tx < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY membership_events.tx DESC, membership_events.seq DESC LIMIT 1",
    )
    .get_result(conn)
    .optional()?;
    Ok(last.map_or_else(FeedCursor::default, |p| FeedCursor {
        tx: p.tx,
        seq: p.seq,
    }))
}

/// Days of joins and leaves kept for watchers to resume from.
pub const HISTORY_DAYS: i64 = 30;

/// Deletes the joins and leaves that occurred before `before`, and moves the horizon to the
/// latest of them; returns how many were deleted.
pub fn prune_events(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Pruned {
        #[diesel(sql_type = BigInt)]
        pruned: i64,
    }
    let pruned: Pruned = diesel::sql_query(
        "WITH gone AS ( \
           DELETE FROM membership_events WHERE occurred_at < $1 RETURNING tx, seq), \
         latest AS ( \
           SELECT tx, seq FROM gone ORDER BY tx DESC, seq DESC LIMIT 1), \
         moved AS ( \
           INSERT INTO membership_horizon (only_row, tx, seq) \
           SELECT true, tx, seq FROM latest \
           ON CONFLICT (only_row) DO UPDATE SET tx = excluded.tx, seq = excluded.seq \
           WHERE (excluded.tx, excluded.seq) > (membership_horizon.tx, membership_horizon.seq)) \
         SELECT count(*) AS pruned FROM gone",
    )
    .bind::<Timestamptz, _>(before)
    .get_result(conn)?;
    Ok(usize::try_from(pruned.pruned).unwrap_or(0))
}

/// The position of the latest join or leave pruned, if any was.
pub fn horizon(conn: &mut PgConnection) -> QueryResult<Option<FeedCursor>> {
    #[derive(QueryableByName)]
    struct Position {
        #[diesel(sql_type = BigInt)]
        tx: i64,
        #[diesel(sql_type = BigInt)]
        seq: i64,
    }
    let horizon: Option<Position> =
        diesel::sql_query("SELECT tx::text::bigint AS tx, seq FROM membership_horizon")
            .get_result(conn)
            .optional()?;
    Ok(horizon.map(|p| FeedCursor {
        tx: p.tx,
        seq: p.seq,
    }))
}

/// A join or a leave.
#[derive(Debug, Clone, QueryableByName)]
pub struct EventRow {
    #[diesel(sql_type = BigInt)]
    pub tx: i64,
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub segment: String,
    #[diesel(sql_type = SqlUuid)]
    pub subject_id: Uuid,
    #[diesel(sql_type = Bool)]
    pub joined: bool,
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = Timestamptz)]
    pub occurred_at: DateTime<Utc>,
}

/// Joins and leaves after a cursor. `ORDER BY` names the table's columns: the bare `tx` would be
/// the selected `tx::text::bigint`, which no index holds, and every read would sort the table.
const LIST_EVENTS_AFTER: &str = "SELECT tx::text::bigint AS tx, seq, segment, subject_id, joined, reason, occurred_at \
         FROM membership_events \
         WHERE (tx, seq) > ($1::text::xid8, $2) \
           AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
           AND (cardinality($3::text[]) = 0 OR segment = ANY($3)) \
         ORDER BY membership_events.tx, membership_events.seq LIMIT $4";

/// Joins and leaves after `after` in commit order, of `segment_names` (all when empty),
/// written by transactions older than every one still running: an event not returned now can
/// only come after the last one returned.
pub fn list_events_after(
    conn: &mut PgConnection,
    after: FeedCursor,
    segment_names: &[String],
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    ecrm_platform::feed::in_index_order(conn, |conn| {
        diesel::sql_query(LIST_EVENTS_AFTER)
            .bind::<Text, _>(after.tx.to_string())
            .bind::<BigInt, _>(after.seq)
            .bind::<Array<Text>, _>(segment_names)
            .bind::<BigInt, _>(limit)
            .load(conn)
    })
}

#[cfg(test)]
mod tests {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;

    use super::*;
    use crate::schema::segmentation::membership_events;

    /// A connection to the test database as the service's role, in its schema.
    fn connect(database: &ecrm_testkit::TestDatabase) -> PgConnection {
        let mut conn =
            diesel::PgConnection::establish(database.service_url(&crate::SERVICE).expose())
                .unwrap();
        conn.batch_execute("SET search_path = segmentation")
            .unwrap();
        conn
    }

    #[tokio::test]
    async fn joins_and_leaves_are_read_through_their_index_without_sorting_the_table() {
        let database = ecrm_testkit::TestDatabase::new(&[&crate::SERVICE]).await;
        let mut conn = connect(&database);
        ecrm_testkit::assert_feed_reads_in_index_order(
            &mut conn,
            LIST_EVENTS_AFTER,
            "membership_events_feed",
        )
        .unwrap();
    }

    #[tokio::test]
    async fn pruning_deletes_old_joins_and_leaves_and_moves_the_horizon_to_the_latest() {
        let database = ecrm_testkit::TestDatabase::new(&[&crate::SERVICE]).await;
        let mut conn = connect(&database);
        diesel::sql_query(
            "INSERT INTO segments (name, description, rule, fields, created_by) \
             VALUES ('buyers', '', 'orders >= 1', '{orders}', 'test')",
        )
        .execute(&mut conn)
        .unwrap();
        for _ in 0..3 {
            join(
                &mut conn,
                &[("buyers".to_owned(), Uuid::now_v7())],
                Reason::Evaluated,
            )
            .unwrap();
        }
        let events: Vec<(i64, DateTime<Utc>)> = membership_events::table
            .order(membership_events::seq)
            .select((membership_events::seq, membership_events::occurred_at))
            .load(&mut conn)
            .unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(horizon(&mut conn).unwrap(), None);
        // The first two are 40 days old.
        diesel::sql_query(
            "UPDATE membership_events SET occurred_at = now() - INTERVAL '40 days' \
             WHERE seq <= $1",
        )
        .bind::<BigInt, _>(events[1].0)
        .execute(&mut conn)
        .unwrap();
        let before = Utc::now() - chrono::TimeDelta::days(HISTORY_DAYS);
        assert_eq!(prune_events(&mut conn, before).unwrap(), 2);
        let moved = horizon(&mut conn).unwrap().unwrap();
        assert_eq!(moved.seq, events[1].0);
        // Nothing more to prune: the horizon stays.
        assert_eq!(prune_events(&mut conn, before).unwrap(), 0);
        assert_eq!(horizon(&mut conn).unwrap(), Some(moved));
        let left: Vec<i64> = membership_events::table
            .select(membership_events::seq)
            .load(&mut conn)
            .unwrap();
        assert_eq!(left, [events[2].0]);
    }
}
