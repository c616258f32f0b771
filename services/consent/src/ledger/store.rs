//! The `ledger` table: inserts and reads only (the service's role may do nothing else to it).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ecrm_platform::feed::FeedCursor;
use uuid::Uuid;

use crate::schema::consent::ledger;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger, check_for_backend(diesel::pg::Pg))]
pub struct EntryRow {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub sequence: i64,
    pub purpose_key: String,
    pub decision: String,
    pub channel: String,
    pub collection_point: String,
    pub notice_version: Option<String>,
    pub ip_hash: Option<String>,
    pub user_agent: Option<String>,
    pub form_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub recorded_by: String,
    pub recorded_by_kind: String,
    pub recorded_at: DateTime<Utc>,
    pub previous_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Holds, until the transaction ends, the right to append to `subject`'s chain (the unique
/// `(subject_id, sequence)` key still refuses a fork should anything bypass it).
pub fn lock_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtextextended('consent.ledger:' || $1::text, 0))",
    )
    .bind::<diesel::sql_types::Uuid, _>(subject)
    .execute(conn)
    .map(drop)
}

pub fn insert(conn: &mut PgConnection, row: &EntryRow) -> QueryResult<()> {
    diesel::insert_into(ledger::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The subject's last entry's sequence number and hash.
pub fn find_last(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Option<(i64, Vec<u8>)>> {
    ledger::table
        .filter(ledger::subject_id.eq(subject))
        .order(ledger::sequence.desc())
        .select((ledger::sequence, ledger::hash))
        .first(conn)
        .optional()
}

/// The subject's entries after the entry `after` (by sequence), oldest first.
pub fn list_by_subject_after(
    conn: &mut PgConnection,
    subject: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<EntryRow>> {
    let after_sequence: i64 = match after {
        None => 0,
        Some(id) => ledger::table
            .find(id)
            .filter(ledger::subject_id.eq(subject))
            .select(ledger::sequence)
            .first(conn)
            .optional()?
            .unwrap_or(i64::MAX),
    };
    ledger::table
        .filter(ledger::subject_id.eq(subject))
        .filter(ledger::sequence.gt(after_sequence))
        .order(ledger::sequence)
        .limit(limit)
        .select(EntryRow::as_select())
        .load(conn)
}

/// The subject's latest entry for each purpose and channel.
pub fn list_latest_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<EntryRow>> {
    ledger::table
        .filter(ledger::subject_id.eq(subject))
        .distinct_on((ledger::purpose_key, ledger::channel))
        .order((
            ledger::purpose_key,
            ledger::channel,
            ledger::sequence.desc(),
        ))
        .select(EntryRow::as_select())
        .load(conn)
}

/// A subject's latest decision for one purpose and channel, when it lapses, when it was
/// recorded, and the kind of principal that recorded it.
pub type LatestDecision = (Uuid, String, Option<DateTime<Utc>>, DateTime<Utc>, String);

/// The latest decision of each of `subjects` for one purpose and channel.
pub fn list_latest_decisions(
    conn: &mut PgConnection,
    purpose_key: &str,
    channel: &str,
    subjects: &[Uuid],
) -> QueryResult<Vec<LatestDecision>> {
    ledger::table
        .filter(ledger::purpose_key.eq(purpose_key))
        .filter(ledger::channel.eq(channel))
        .filter(ledger::subject_id.eq_any(subjects))
        .distinct_on(ledger::subject_id)
        .order((ledger::subject_id, ledger::sequence.desc()))
        .select((
            ledger::subject_id,
            ledger::decision,
            ledger::expires_at,
            ledger::recorded_at,
            ledger::recorded_by_kind,
        ))
        .load(conn)
}

/// Entries after `(subject, sequence)` in chain order, for verification; one subject's only
/// when `only` is given.
pub fn list_in_chain_order(
    conn: &mut PgConnection,
    after: Option<(Uuid, i64)>,
    only: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<EntryRow>> {
    let mut query = ledger::table
        .order((ledger::subject_id, ledger::sequence))
        .limit(limit)
        .select(EntryRow::as_select())
        .into_boxed();
    if let Some(subject) = only {
        query = query.filter(ledger::subject_id.eq(subject));
    }
    if let Some((subject, sequence)) = after {
        query = query.filter(
            ledger::subject_id.gt(subject).or(ledger::subject_id
                .eq(subject)
                .and(ledger::sequence.gt(sequence))),
        );
    }
    query.load(conn)
}

/// An entry's place in the feed.
#[derive(Debug, QueryableByName)]
struct FeedRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    tx: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    feed_seq: i64,
}

/// The ledger's feed after a cursor. `ORDER BY` names the table's columns: the bare `tx` would
/// be the selected `tx::text::bigint`, which no index holds, and every read would sort the table.
const LIST_FEED_AFTER: &str = "SELECT id, tx::text::bigint AS tx, feed_seq FROM ledger \
         WHERE (tx, feed_seq) > ($1::text::xid8, $2) \
           AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
           AND (cardinality($3) = 0 OR purpose_key = ANY($3)) \
         ORDER BY ledger.tx, ledger.feed_seq \
         LIMIT $4";

/// Entries after `(tx, seq)` in commit order, of `purposes` (all when empty), written by
/// transactions older than every transaction still running: an entry not returned now can
/// only come after the last one returned.
pub fn list_feed_after(
    conn: &mut PgConnection,
    after: FeedCursor,
    purposes: &[String],
    limit: i64,
) -> QueryResult<Vec<(FeedCursor, EntryRow)>> {
    use diesel::sql_types::{Array, BigInt, Text};
    let positions: Vec<FeedRow> = ecrm_platform::feed::in_index_order(conn, |conn| {
        diesel::sql_query(LIST_FEED_AFTER)
            .bind::<Text, _>(after.tx.to_string())
            .bind::<BigInt, _>(after.seq)
            .bind::<Array<Text>, _>(purposes)
            .bind::<BigInt, _>(limit)
            .load(conn)
    })?;
    let ids: Vec<Uuid> = positions.iter().map(|p| p.id).collect();
    let mut entries: std::collections::HashMap<Uuid, EntryRow> = ledger::table
        .filter(ledger::id.eq_any(&ids))
        .select(EntryRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    Ok(positions
        .into_iter()
        .filter_map(|p| {
            let cursor = FeedCursor {
                tx: p.tx,
                seq: p.feed_seq,
            };
            entries.remove(&p.id).map(|row| (cursor, row))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use ecrm_platform::DbError;
    use ecrm_testkit::{TestDatabase, assert_feed_reads_in_index_order};

    use super::*;

    #[tokio::test]
    async fn the_feed_is_read_through_its_index_without_sorting_the_ledger() {
        let database = TestDatabase::new(&[&crate::SERVICE]).await;
        let db = database.db(&crate::SERVICE).await.unwrap();
        db.run(|conn| {
            Ok::<_, DbError>(assert_feed_reads_in_index_order(
                conn,
                LIST_FEED_AFTER,
                "ledger_feed",
            )?)
        })
        .await
        .unwrap();
    }
}
