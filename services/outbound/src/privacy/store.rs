//! The `restrictions` and `erasures` tables, and what a data subject right reads or deletes of
//! a subject in the other tables.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::outbound::{
    campaign_recipients, campaigns, erasures, messages, restrictions, unsubscribes,
};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = restrictions, check_for_backend(diesel::pg::Pg))]
pub struct RestrictionRow {
    pub subject_id: Uuid,
    pub restricted_at: DateTime<Utc>,
    pub request_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = erasures, check_for_backend(diesel::pg::Pg))]
pub struct ErasureRow {
    pub request_id: Uuid,
    pub subject_id: Uuid,
    pub receipt: serde_json::Value,
    pub completed_at: DateTime<Utc>,
}

/// A campaign the subject was a recipient of.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct RecipientOf {
    pub campaign_id: Uuid,
    pub name: String,
    pub channel: String,
    pub purpose_key: String,
    pub started_at: Option<DateTime<Utc>>,
}

/// Restricts the subject, unless it is already: returns the restriction in force.
pub fn insert_restriction(
    conn: &mut PgConnection,
    subject: Uuid,
    request: Uuid,
) -> QueryResult<RestrictionRow> {
    diesel::insert_into(restrictions::table)
        .values((
            restrictions::subject_id.eq(subject),
            restrictions::request_id.eq(request),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    restrictions::table
        .find(subject)
        .select(RestrictionRow::as_select())
        .first(conn)
}

pub fn find_restriction(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Option<RestrictionRow>> {
    restrictions::table
        .find(subject)
        .select(RestrictionRow::as_select())
        .first(conn)
        .optional()
}

/// Lifts the subject's restriction; returns how many there were (0 or 1).
pub fn delete_restriction(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(restrictions::table.find(subject)).execute(conn)
}

/// Those of `subjects` whose processing is restricted.
pub fn list_restricted(conn: &mut PgConnection, subjects: &[Uuid]) -> QueryResult<HashSet<Uuid>> {
    let mut restricted = HashSet::new();
    // Bounded statements however large the batch.
    for chunk in subjects.chunks(10_000) {
        restricted.extend(
            restrictions::table
                .filter(restrictions::subject_id.eq_any(chunk))
                .select(restrictions::subject_id)
                .load::<Uuid>(conn)?,
        );
    }
    Ok(restricted)
}

/// Records the erasure request with an empty receipt unless it is recorded already; returns
/// whether it was inserted. A concurrent insert of the same request waits for the other to
/// commit, then inserts nothing.
pub fn insert_erasure(conn: &mut PgConnection, request: Uuid, subject: Uuid) -> QueryResult<bool> {
    diesel::insert_into(erasures::table)
        .values((
            erasures::request_id.eq(request),
            erasures::subject_id.eq(subject),
            erasures::receipt.eq(serde_json::json!([])),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|inserted| inserted > 0)
}

pub fn find_erasure(conn: &mut PgConnection, request: Uuid) -> QueryResult<Option<ErasureRow>> {
    erasures::table
        .find(request)
        .select(ErasureRow::as_select())
        .first(conn)
        .optional()
}

/// Writes the erasure's receipt; returns when the erasure was carried out.
pub fn update_erasure_receipt(
    conn: &mut PgConnection,
    request: Uuid,
    receipt: &serde_json::Value,
) -> QueryResult<DateTime<Utc>> {
    diesel::update(erasures::table.find(request))
        .set(erasures::receipt.eq(receipt))
        .returning(erasures::completed_at)
        .get_result(conn)
}

/// The campaigns the subject was a recipient of, oldest first.
pub fn list_campaigns_by_recipient(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<RecipientOf>> {
    campaign_recipients::table
        .inner_join(campaigns::table)
        .filter(campaign_recipients::subject_id.eq(subject))
        .order(campaigns::created_at)
        .select((
            campaigns::campaign_id,
            campaigns::name,
            campaigns::channel,
            campaigns::purpose_key,
            campaigns::started_at,
        ))
        .load(conn)
}

pub fn delete_messages_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(messages::table.filter(messages::subject_id.eq(subject))).execute(conn)
}

pub fn delete_campaign_recipients_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<usize> {
    diesel::delete(campaign_recipients::table.filter(campaign_recipients::subject_id.eq(subject)))
        .execute(conn)
}

pub fn delete_unsubscribes_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<usize> {
    diesel::delete(unsubscribes::table.filter(unsubscribes::subject_id.eq(subject))).execute(conn)
}
