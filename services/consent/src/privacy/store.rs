//! The `restrictions` and `erasures` tables.

use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::consent::{erasures, restrictions};

/// Sets or lifts the subject's restriction.
pub fn upsert_restriction(
    conn: &mut PgConnection,
    subject: Uuid,
    restricted: bool,
    request: Uuid,
) -> QueryResult<()> {
    diesel::insert_into(restrictions::table)
        .values((
            restrictions::subject_id.eq(subject),
            restrictions::restricted.eq(restricted),
            restrictions::request_id.eq(request),
        ))
        .on_conflict(restrictions::subject_id)
        .do_update()
        .set((
            restrictions::restricted.eq(restricted),
            restrictions::request_id.eq(request),
            restrictions::changed_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(drop)
}

/// Those of `subjects` whose processing is restricted now.
pub fn list_restricted(conn: &mut PgConnection, subjects: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    restrictions::table
        .filter(restrictions::subject_id.eq_any(subjects))
        .filter(restrictions::restricted)
        .select(restrictions::subject_id)
        .load(conn)
}

pub fn find_restriction(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Option<(bool, chrono::DateTime<chrono::Utc>)>> {
    restrictions::table
        .find(subject)
        .select((restrictions::restricted, restrictions::changed_at))
        .first(conn)
        .optional()
}

/// Records the erasure request unless it was carried out already; returns whether it was.
pub fn insert_erasure(conn: &mut PgConnection, request: Uuid, subject: Uuid) -> QueryResult<bool> {
    diesel::insert_into(erasures::table)
        .values((
            erasures::request_id.eq(request),
            erasures::subject_id.eq(subject),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|inserted| inserted == 0)
}

pub fn find_erasure(
    conn: &mut PgConnection,
    request: Uuid,
) -> QueryResult<Option<(Uuid, chrono::DateTime<chrono::Utc>)>> {
    erasures::table
        .find(request)
        .select((erasures::subject_id, erasures::completed_at))
        .first(conn)
        .optional()
}

pub fn delete_restriction(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(restrictions::table.find(subject)).execute(conn)
}

/// The request behind the subject's restriction, while it is restricted.
pub fn find_active_restriction(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Option<Uuid>> {
    restrictions::table
        .find(subject)
        .filter(restrictions::restricted)
        .select(restrictions::request_id)
        .first(conn)
        .optional()
}
