//! The `subject_merges` and `purchases` tables (`feed_cursors` is the platform follower's).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Timestamptz;
use uuid::Uuid;

use crate::schema::consent::{purchases, subject_merges};

/// Records that `merged` is `into` now; subjects merged into `merged` before follow it.
pub fn insert_merge(
    conn: &mut PgConnection,
    merged: Uuid,
    into: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(subject_merges::table.filter(subject_merges::into_subject_id.eq(merged)))
        .set(subject_merges::into_subject_id.eq(into))
        .execute(conn)?;
    diesel::insert_into(subject_merges::table)
        .values((
            subject_merges::merged_subject_id.eq(merged),
            subject_merges::into_subject_id.eq(into),
            subject_merges::merged_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(drop)
}

/// The subject each of `subjects` that was merged away is now; the others are left out.
pub fn list_survivors(
    conn: &mut PgConnection,
    subjects: &[Uuid],
) -> QueryResult<HashMap<Uuid, Uuid>> {
    Ok(subject_merges::table
        .filter(subject_merges::merged_subject_id.eq_any(subjects))
        .select((
            subject_merges::merged_subject_id,
            subject_merges::into_subject_id,
        ))
        .load::<(Uuid, Uuid)>(conn)?
        .into_iter()
        .collect())
}

/// Records purchases made between `first` and `last`.
pub fn upsert_purchase(
    conn: &mut PgConnection,
    subject: Uuid,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> QueryResult<()> {
    upsert_purchases(conn, &[(subject, first, last)])
}

/// Records, for each subject (at most once each), purchases made between its `first` and
/// `last`, in one statement.
pub fn upsert_purchases(
    conn: &mut PgConnection,
    rows: &[(Uuid, DateTime<Utc>, DateTime<Utc>)],
) -> QueryResult<()> {
    use diesel::sql_types::{Array, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(());
    }
    let subjects: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let firsts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.1).collect();
    let lasts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.2).collect();
    diesel::sql_query(
        "INSERT INTO purchases (subject_id, first_purchase_at, last_purchase_at) \
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) \
         ON CONFLICT (subject_id) DO UPDATE SET \
           first_purchase_at = LEAST(purchases.first_purchase_at, excluded.first_purchase_at), \
           last_purchase_at = GREATEST(purchases.last_purchase_at, excluded.last_purchase_at)",
    )
    .bind::<Array<SqlUuid>, _>(&subjects)
    .bind::<Array<Timestamptz>, _>(&firsts)
    .bind::<Array<Timestamptz>, _>(&lasts)
    .execute(conn)
    .map(drop)
}

pub fn find_purchases(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
    purchases::table
        .find(subject)
        .select((purchases::first_purchase_at, purchases::last_purchase_at))
        .first(conn)
        .optional()
}

/// Those of `subjects` who bought something.
pub fn list_purchasers(conn: &mut PgConnection, subjects: &[Uuid]) -> QueryResult<HashSet<Uuid>> {
    Ok(purchases::table
        .filter(purchases::subject_id.eq_any(subjects))
        .select(purchases::subject_id)
        .load::<Uuid>(conn)?
        .into_iter()
        .collect())
}
