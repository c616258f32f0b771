//! Notices to the recipients of a subject's data of its erasure, restriction or rectification
//! (GDPR Art. 19): every partner that received the subject's data or synced the subject itself
//! is told, the notice is kept as the record of it, and the partner pulls it until it
//! acknowledges it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::identifiers::domain::IdentifierKind;
use crate::schema::profiles::{disclosures, identifiers, recipient_notices};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Erased,
    Restricted,
    RestrictionLifted,
    Rectified,
}

impl NoticeKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Erased => "erased",
            NoticeKind::Restricted => "restricted",
            NoticeKind::RestrictionLifted => "restriction_lifted",
            NoticeKind::Rectified => "rectified",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            NoticeKind::Erased,
            NoticeKind::Restricted,
            NoticeKind::RestrictionLifted,
            NoticeKind::Rectified,
        ]
        .into_iter()
        .find(|k| k.as_str() == stored)
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = recipient_notices, check_for_backend(diesel::pg::Pg))]
pub struct NoticeRow {
    pub id: Uuid,
    pub partner_id: String,
    pub subject_id: Uuid,
    pub kind: String,
    pub fields: Vec<Option<String>>,
    pub request_id: Uuid,
    pub issued_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

/// The partners that received `subject`'s data or hold their own reference to it, sorted.
pub fn recipients(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<String>> {
    let mut partners: Vec<String> = disclosures::table
        .filter(disclosures::subject_id.eq(subject))
        .select(disclosures::partner_id)
        .distinct()
        .load(conn)?;
    let syncing: Vec<Option<String>> = identifiers::table
        .filter(identifiers::subject_id.eq(subject))
        .filter(identifiers::kind.eq(IdentifierKind::PartnerReference.as_str()))
        .select(identifiers::partner_id)
        .load(conn)?;
    partners.extend(syncing.into_iter().flatten());
    partners.sort();
    partners.dedup();
    Ok(partners)
}

/// Issues a `kind` notice for `request` to every recipient of `subject`, in the caller's
/// transaction, and returns the recipients. Repeating it for the same request issues nothing
/// new.
pub fn notify_recipients(
    conn: &mut PgConnection,
    subject: Uuid,
    kind: NoticeKind,
    fields: &[String],
    request: Uuid,
) -> QueryResult<Vec<String>> {
    let partners = recipients(conn, subject)?;
    if partners.is_empty() {
        return Ok(partners);
    }
    let fields: Vec<Option<&str>> = fields.iter().map(|f| Some(f.as_str())).collect();
    let rows: Vec<_> = partners
        .iter()
        .map(|partner| {
            (
                recipient_notices::id.eq(Uuid::now_v7()),
                recipient_notices::partner_id.eq(partner),
                recipient_notices::subject_id.eq(subject),
                recipient_notices::kind.eq(kind.as_str()),
                recipient_notices::fields.eq(fields.clone()),
                recipient_notices::request_id.eq(request),
            )
        })
        .collect();
    diesel::insert_into(recipient_notices::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(partners)
}

/// The partner's notices not acknowledged yet, oldest first.
pub fn pending(conn: &mut PgConnection, partner: &str, limit: i64) -> QueryResult<Vec<NoticeRow>> {
    recipient_notices::table
        .filter(recipient_notices::partner_id.eq(partner))
        .filter(recipient_notices::acknowledged_at.is_null())
        .order((recipient_notices::issued_at, recipient_notices::id))
        .limit(limit)
        .select(NoticeRow::as_select())
        .load(conn)
}

/// How many of `ids` are the partner's own notices.
pub fn count_owned(conn: &mut PgConnection, partner: &str, ids: &[Uuid]) -> QueryResult<i64> {
    recipient_notices::table
        .filter(recipient_notices::partner_id.eq(partner))
        .filter(recipient_notices::id.eq_any(ids))
        .count()
        .get_result(conn)
}

/// Marks the partner's notices among `ids` acknowledged now; returns how many were pending.
pub fn acknowledge(conn: &mut PgConnection, partner: &str, ids: &[Uuid]) -> QueryResult<usize> {
    diesel::update(
        recipient_notices::table
            .filter(recipient_notices::partner_id.eq(partner))
            .filter(recipient_notices::id.eq_any(ids))
            .filter(recipient_notices::acknowledged_at.is_null()),
    )
    .set(recipient_notices::acknowledged_at.eq(diesel::dsl::now))
    .execute(conn)
}

pub fn list_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<NoticeRow>> {
    recipient_notices::table
        .filter(recipient_notices::subject_id.eq(subject))
        .order((recipient_notices::issued_at, recipient_notices::id))
        .select(NoticeRow::as_select())
        .load(conn)
}
