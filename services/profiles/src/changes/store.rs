//! The `changes` table.

use diesel::prelude::*;

use super::domain::NewChange;
use crate::schema::profiles::changes;

/// Records changes in the caller's transaction: they become visible with it, in its order.
/// One statement of one array a column, whatever the number of changes (a batch of
/// interactions writes one a row).
pub fn record(conn: &mut PgConnection, new: &[NewChange]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Bool, Nullable, Text, Uuid};
    if new.is_empty() {
        return Ok(());
    }
    let subjects: Vec<uuid::Uuid> = new.iter().map(|c| c.subject_id).collect();
    let kinds: Vec<&str> = new.iter().map(|c| c.kind.as_str()).collect();
    let merged: Vec<Option<uuid::Uuid>> = new.iter().map(|c| c.merged_subject_id).collect();
    let restricted: Vec<Option<bool>> = new.iter().map(|c| c.restricted).collect();
    let interactions: Vec<Option<uuid::Uuid>> = new.iter().map(|c| c.interaction_id).collect();
    diesel::sql_query(
        "INSERT INTO changes (subject_id, kind, merged_subject_id, restricted, interaction_id) \
         SELECT subject_id, kind, merged_subject_id, restricted, interaction_id \
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::boolean[], $5::uuid[]) \
           WITH ORDINALITY AS t(subject_id, kind, merged_subject_id, restricted, interaction_id, n) \
         ORDER BY n",
    )
    .bind::<Array<Uuid>, _>(&subjects)
    .bind::<Array<Text>, _>(&kinds)
    .bind::<Array<Nullable<Uuid>>, _>(&merged)
    .bind::<Array<Nullable<Bool>>, _>(&restricted)
    .bind::<Array<Nullable<Uuid>>, _>(&interactions)
    .execute(conn)
    .map(drop)
}

#[derive(Debug, QueryableByName)]
pub struct ChangeRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub tx: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub seq: i64,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub subject_id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    pub merged_subject_id: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
    pub restricted: Option<bool>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    pub interaction_id: Option<uuid::Uuid>,
}

/// The changes after a cursor. `ORDER BY` names the table's columns: the bare `tx` would be
/// the selected `tx::text::bigint`, which no index holds, and every read would sort the table.
const LIST_AFTER: &str = "SELECT tx::text::bigint AS tx, seq, subject_id, kind, occurred_at, merged_subject_id, \
                restricted, interaction_id \
         FROM changes \
         WHERE (tx, seq) > ($1::text::xid8, $2) \
           AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
           AND (cardinality($3) = 0 OR kind = ANY($3)) \
         ORDER BY changes.tx, changes.seq \
         LIMIT $4";

/// Changes after `(tx, seq)` of the given kinds (all when empty), in commit order, written by
/// transactions older than every transaction still running: a change not returned now can only
/// come after the last one returned.
pub fn list_after(
    conn: &mut PgConnection,
    tx: i64,
    seq: i64,
    kinds: &[&str],
    limit: i64,
) -> QueryResult<Vec<ChangeRow>> {
    use diesel::sql_types::{Array, BigInt, Text};
    ecrm_platform::feed::in_index_order(conn, |conn| {
        diesel::sql_query(LIST_AFTER)
            .bind::<Text, _>(tx.to_string())
            .bind::<BigInt, _>(seq)
            .bind::<Array<Text>, _>(kinds)
            .bind::<BigInt, _>(limit)
            .load(conn)
    })
}

/// Deletes a subject's changes before its erasure: the feed keeps only that it was erased.
pub fn delete_by_subject(conn: &mut PgConnection, subject: uuid::Uuid) -> QueryResult<usize> {
    diesel::delete(changes::table.filter(changes::subject_id.eq(subject))).execute(conn)
}

#[cfg(test)]
mod tests {
    use ecrm_platform::DbError;
    use ecrm_testkit::{TestDatabase, assert_feed_reads_in_index_order};

    use super::*;

    #[tokio::test]
    async fn the_feed_is_read_through_its_index_without_sorting_the_table() {
        let database = TestDatabase::new(&[&crate::SERVICE]).await;
        let db = database.db(&crate::SERVICE).await.unwrap();
        db.run(|conn| {
            Ok::<_, DbError>(assert_feed_reads_in_index_order(
                conn,
                LIST_AFTER,
                "changes_order",
            )?)
        })
        .await
        .unwrap();
    }
}
