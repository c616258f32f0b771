//! The `profiles` and `merges` tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::profiles::{merges, profiles};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = profiles, check_for_backend(diesel::pg::Pg))]
pub struct ProfileRow {
    pub subject_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub restricted_at: Option<DateTime<Utc>>,
    pub merged_into: Option<Uuid>,
    pub erased_at: Option<DateTime<Utc>>,
}

impl ProfileRow {
    pub fn is_live(&self) -> bool {
        self.merged_into.is_none() && self.erased_at.is_none()
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = merges, check_for_backend(diesel::pg::Pg))]
pub struct MergeRow {
    pub id: Uuid,
    pub merged_subject_id: Uuid,
    pub sealed_reason: Vec<u8>,
    pub principal: String,
    pub merged_at: DateTime<Utc>,
}

pub fn insert(conn: &mut PgConnection, subject: Uuid) -> QueryResult<ProfileRow> {
    diesel::insert_into(profiles::table)
        .values(profiles::subject_id.eq(subject))
        .returning(ProfileRow::as_returning())
        .get_result(conn)
}

pub fn find(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Option<ProfileRow>> {
    profiles::table
        .find(subject)
        .select(ProfileRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_many(conn: &mut PgConnection, subjects: &[Uuid]) -> QueryResult<Vec<ProfileRow>> {
    profiles::table
        .filter(profiles::subject_id.eq_any(subjects))
        .select(ProfileRow::as_select())
        .load(conn)
}

/// The rows of `subjects`, locked against merges and erasures (which lock them for update) for
/// the rest of the transaction, in id order; each as it is once the lock is held. The weakest
/// lock that does so (`FOR KEY SHARE`): the one the foreign keys of rows referring to a profile
/// take anyway, so inserting those rows takes no second lock.
pub fn lock_shared(conn: &mut PgConnection, subjects: &[Uuid]) -> QueryResult<Vec<ProfileRow>> {
    profiles::table
        .filter(profiles::subject_id.eq_any(subjects))
        .order(profiles::subject_id)
        .for_key_share()
        .select(ProfileRow::as_select())
        .load(conn)
}

/// Locks the rows of `subjects` for the rest of the transaction, in id order so that two
/// transactions locking the same pair cannot deadlock.
pub fn lock(conn: &mut PgConnection, subjects: &[Uuid]) -> QueryResult<Vec<ProfileRow>> {
    profiles::table
        .filter(profiles::subject_id.eq_any(subjects))
        .order(profiles::subject_id)
        .for_update()
        .select(ProfileRow::as_select())
        .load(conn)
}

pub fn touch(conn: &mut PgConnection, subject: Uuid) -> QueryResult<()> {
    diesel::update(profiles::table.find(subject))
        .set(profiles::updated_at.eq(diesel::dsl::now))
        .execute(conn)
        .map(drop)
}

/// Live profiles after `after` (in id order, which is creation order for UUID v7).
pub fn list_live_after(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<ProfileRow>> {
    let mut query = profiles::table
        .filter(profiles::merged_into.is_null())
        .filter(profiles::erased_at.is_null())
        .order(profiles::subject_id)
        .limit(limit)
        .select(ProfileRow::as_select())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(profiles::subject_id.gt(after));
    }
    query.load(conn)
}

/// The subjects merged into each of `subjects`, oldest merge first.
pub fn list_merged_into(
    conn: &mut PgConnection,
    subjects: &[Uuid],
) -> QueryResult<Vec<(Uuid, Uuid)>> {
    profiles::table
        .filter(profiles::merged_into.eq_any(subjects))
        .order((profiles::merged_at, profiles::subject_id))
        .select((
            profiles::merged_into.assume_not_null(),
            profiles::subject_id,
        ))
        .load(conn)
}

/// Makes `merged` a tombstone pointing to `into`, with every tombstone that pointed to it.
pub fn mark_merged(conn: &mut PgConnection, merged: Uuid, into: Uuid) -> QueryResult<()> {
    diesel::update(profiles::table.filter(profiles::merged_into.eq(merged)))
        .set(profiles::merged_into.eq(into))
        .execute(conn)?;
    diesel::update(profiles::table.find(merged))
        .set((
            profiles::merged_into.eq(into),
            profiles::merged_at.eq(diesel::dsl::now),
            profiles::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(drop)
}

pub fn update_restricted(
    conn: &mut PgConnection,
    subject: Uuid,
    restricted_at: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    diesel::update(profiles::table.find(subject))
        .set((
            profiles::restricted_at.eq(restricted_at),
            profiles::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(drop)
}

/// Leaves only the subject's id and dates, so the id is known to have existed.
pub fn mark_erased(conn: &mut PgConnection, subject: Uuid) -> QueryResult<()> {
    diesel::update(profiles::table.find(subject))
        .set((
            profiles::erased_at.eq(diesel::dsl::now),
            profiles::restricted_at.eq(None::<DateTime<Utc>>),
            profiles::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(drop)
}

pub fn insert_merge(
    conn: &mut PgConnection,
    id: Uuid,
    subject: Uuid,
    merged_subject: Uuid,
    sealed_reason: &[u8],
    principal: &str,
) -> QueryResult<()> {
    diesel::insert_into(merges::table)
        .values((
            merges::id.eq(id),
            merges::subject_id.eq(subject),
            merges::merged_subject_id.eq(merged_subject),
            merges::sealed_reason.eq(sealed_reason),
            merges::principal.eq(principal),
        ))
        .execute(conn)
        .map(drop)
}

pub fn list_merges_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<MergeRow>> {
    merges::table
        .filter(merges::subject_id.eq(subject))
        .order(merges::merged_at)
        .select(MergeRow::as_select())
        .load(conn)
}

/// Moves a merge record to another subject, its reason resealed with that subject's key.
pub fn update_merge_subject(
    conn: &mut PgConnection,
    id: Uuid,
    subject: Uuid,
    sealed_reason: &[u8],
) -> QueryResult<()> {
    diesel::update(merges::table.find(id))
        .set((
            merges::subject_id.eq(subject),
            merges::sealed_reason.eq(sealed_reason),
        ))
        .execute(conn)
        .map(drop)
}

pub fn delete_merges_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(merges::table.filter(merges::subject_id.eq(subject))).execute(conn)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::schema::profiles::erasures, check_for_backend(diesel::pg::Pg))]
pub struct ErasureRow {
    pub receipt: serde_json::Value,
    pub completed_at: DateTime<Utc>,
}

pub fn find_erasure(conn: &mut PgConnection, request_id: Uuid) -> QueryResult<Option<ErasureRow>> {
    use crate::schema::profiles::erasures;
    erasures::table
        .find(request_id)
        .select(ErasureRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert_erasure(
    conn: &mut PgConnection,
    request_id: Uuid,
    subject: Uuid,
    receipt: &serde_json::Value,
) -> QueryResult<ErasureRow> {
    use crate::schema::profiles::erasures;
    diesel::insert_into(erasures::table)
        .values((
            erasures::request_id.eq(request_id),
            erasures::subject_id.eq(subject),
            erasures::receipt.eq(receipt),
        ))
        .returning(ErasureRow::as_returning())
        .get_result(conn)
}
