//! The `identifiers` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::profiles::identifiers;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = identifiers, check_for_backend(diesel::pg::Pg))]
pub struct IdentifierRow {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub kind: String,
    pub partner_id: Option<String>,
    pub custom_type: Option<String>,
    pub sealed_value: Vec<u8>,
    pub verified_at: Option<DateTime<Utc>>,
    pub verification_method: Option<String>,
    pub source: String,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = identifiers)]
pub struct NewIdentifierRow<'a> {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub kind: &'a str,
    pub partner_id: Option<&'a str>,
    pub custom_type: Option<&'a str>,
    pub lookup: &'a str,
    pub sealed_value: &'a [u8],
    pub verified_at: Option<DateTime<Utc>>,
    pub verification_method: Option<&'a str>,
    pub source: &'a str,
}

pub fn insert(conn: &mut PgConnection, row: &NewIdentifierRow<'_>) -> QueryResult<()> {
    diesel::insert_into(identifiers::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The subjects the blind indexes `lookups` belong to, as (lookup, subject) pairs.
pub fn find_subjects_by_lookups(
    conn: &mut PgConnection,
    lookups: &[String],
) -> QueryResult<Vec<(String, Uuid)>> {
    identifiers::table
        .filter(identifiers::lookup.eq_any(lookups))
        .select((identifiers::lookup, identifiers::subject_id))
        .load(conn)
}

pub fn find_by_lookup(conn: &mut PgConnection, lookup: &str) -> QueryResult<Option<IdentifierRow>> {
    identifiers::table
        .filter(identifiers::lookup.eq(lookup))
        .select(IdentifierRow::as_select())
        .first(conn)
        .optional()
}

pub fn list_by_subjects(
    conn: &mut PgConnection,
    subjects: &[Uuid],
) -> QueryResult<Vec<IdentifierRow>> {
    identifiers::table
        .filter(identifiers::subject_id.eq_any(subjects))
        .order((identifiers::added_at, identifiers::id))
        .select(IdentifierRow::as_select())
        .load(conn)
}

/// The identifiers of `subjects` of the given kinds, in no particular order.
pub fn list_by_subjects_and_kinds(
    conn: &mut PgConnection,
    subjects: &[Uuid],
    kinds: &[&str],
) -> QueryResult<Vec<IdentifierRow>> {
    identifiers::table
        .filter(identifiers::subject_id.eq_any(subjects))
        .filter(identifiers::kind.eq_any(kinds))
        .select(IdentifierRow::as_select())
        .load(conn)
}

/// Those of `subjects` that `partner_id` synced.
pub fn partner_subjects(
    conn: &mut PgConnection,
    partner_id: &str,
    subjects: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    identifiers::table
        .filter(identifiers::partner_id.eq(partner_id))
        .filter(identifiers::subject_id.eq_any(subjects))
        .select(identifiers::subject_id)
        .distinct()
        .load(conn)
}

/// Whether `partner_id` synced `subject` (holds a reference to it).
pub fn partner_has_subject(
    conn: &mut PgConnection,
    partner_id: &str,
    subject: Uuid,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        identifiers::table
            .filter(identifiers::partner_id.eq(partner_id))
            .filter(identifiers::subject_id.eq(subject)),
    ))
    .get_result(conn)
}

/// Moves an identifier to another subject, sealed with that subject's key.
pub fn update_subject(
    conn: &mut PgConnection,
    id: Uuid,
    subject: Uuid,
    sealed_value: &[u8],
) -> QueryResult<()> {
    diesel::update(identifiers::table.find(id))
        .set((
            identifiers::subject_id.eq(subject),
            identifiers::sealed_value.eq(sealed_value),
        ))
        .execute(conn)
        .map(drop)
}

pub fn delete_by_lookup(
    conn: &mut PgConnection,
    subject: Uuid,
    lookup: &str,
) -> QueryResult<usize> {
    diesel::delete(
        identifiers::table
            .filter(identifiers::subject_id.eq(subject))
            .filter(identifiers::lookup.eq(lookup)),
    )
    .execute(conn)
}

pub fn delete_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(identifiers::table.filter(identifiers::subject_id.eq(subject))).execute(conn)
}

/// Records that an identifier already on the profile has now been verified.
pub fn update_verification(
    conn: &mut PgConnection,
    id: Uuid,
    verified_at: DateTime<Utc>,
    verification_method: Option<&str>,
) -> QueryResult<()> {
    diesel::update(identifiers::table.find(id))
        .set((
            identifiers::verified_at.eq(verified_at),
            identifiers::verification_method.eq(verification_method),
        ))
        .execute(conn)
        .map(drop)
}
