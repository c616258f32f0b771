//! The `checkpoints` and `checkpoint_heads` tables: inserts and reads only.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::consent::{checkpoint_heads, checkpoints, ledger};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = checkpoints, check_for_backend(diesel::pg::Pg))]
pub struct CheckpointRow {
    pub id: Uuid,
    pub taken_at: DateTime<Utc>,
    pub previous_id: Option<Uuid>,
    pub subjects: i64,
    pub heads_digest: Vec<u8>,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A chain's head: its subject, last sequence number and last hash.
pub type Head = (Uuid, i64, Vec<u8>);

/// Serialises checkpoint takers, so each builds on the one before.
pub fn lock_checkpoints(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('consent.checkpoints', 0))")
        .execute(conn)
        .map(drop)
}

/// The head of every subject's chain now, by subject.
pub fn list_ledger_heads(conn: &mut PgConnection) -> QueryResult<Vec<Head>> {
    ledger::table
        .distinct_on(ledger::subject_id)
        .order((ledger::subject_id, ledger::sequence.desc()))
        .select((ledger::subject_id, ledger::sequence, ledger::hash))
        .load(conn)
}

/// The hash of `subject`'s entry `sequence`, if the ledger holds it.
pub fn find_entry_hash(
    conn: &mut PgConnection,
    subject: Uuid,
    sequence: i64,
) -> QueryResult<Option<(Uuid, Vec<u8>)>> {
    ledger::table
        .filter(ledger::subject_id.eq(subject))
        .filter(ledger::sequence.eq(sequence))
        .select((ledger::id, ledger::hash))
        .first(conn)
        .optional()
}

/// Checkpoints in the order they were taken.
pub fn list_checkpoints(conn: &mut PgConnection) -> QueryResult<Vec<CheckpointRow>> {
    checkpoints::table
        .order((checkpoints::taken_at, checkpoints::id))
        .select(CheckpointRow::as_select())
        .load(conn)
}

pub fn find_latest(conn: &mut PgConnection) -> QueryResult<Option<CheckpointRow>> {
    checkpoints::table
        .order((checkpoints::taken_at.desc(), checkpoints::id.desc()))
        .select(CheckpointRow::as_select())
        .first(conn)
        .optional()
}

/// The heads a checkpoint recorded (those that moved since the one before).
pub fn list_heads(conn: &mut PgConnection, checkpoint: Uuid) -> QueryResult<Vec<Head>> {
    checkpoint_heads::table
        .filter(checkpoint_heads::checkpoint_id.eq(checkpoint))
        .select((
            checkpoint_heads::subject_id,
            checkpoint_heads::sequence,
            checkpoint_heads::hash,
        ))
        .load(conn)
}

/// The latest head any checkpoint recorded for each subject (for one subject with `only`).
pub fn list_signed_heads(conn: &mut PgConnection, only: Option<Uuid>) -> QueryResult<Vec<Head>> {
    let mut query = checkpoint_heads::table
        .distinct_on(checkpoint_heads::subject_id)
        .order((
            checkpoint_heads::subject_id,
            checkpoint_heads::sequence.desc(),
        ))
        .select((
            checkpoint_heads::subject_id,
            checkpoint_heads::sequence,
            checkpoint_heads::hash,
        ))
        .into_boxed();
    if let Some(subject) = only {
        query = query.filter(checkpoint_heads::subject_id.eq(subject));
    }
    query.load(conn)
}

pub fn insert(conn: &mut PgConnection, row: &CheckpointRow, heads: &[Head]) -> QueryResult<()> {
    diesel::insert_into(checkpoints::table)
        .values(row)
        .execute(conn)?;
    for chunk in heads.chunks(5_000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(subject, sequence, hash)| {
                (
                    checkpoint_heads::checkpoint_id.eq(row.id),
                    checkpoint_heads::subject_id.eq(*subject),
                    checkpoint_heads::sequence.eq(*sequence),
                    checkpoint_heads::hash.eq(hash),
                )
            })
            .collect();
        diesel::insert_into(checkpoint_heads::table)
            .values(rows)
            .execute(conn)?;
    }
    Ok(())
}
