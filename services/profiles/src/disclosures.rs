//! Disclosures to partners: the recipients of each subject's data (GDPR Art. 19), as access
//! requests must list them (Art. 15(1)(c)). Partner sharing records them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::profiles::disclosures;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = disclosures, check_for_backend(diesel::pg::Pg))]
pub struct DisclosureRow {
    pub id: Uuid,
    pub partner_id: String,
    pub fields: Vec<Option<String>>,
    pub disclosed_at: DateTime<Utc>,
}

/// Records that `partner_id` received `fields` of `subject`'s data, in the caller's transaction.
pub fn record(
    conn: &mut PgConnection,
    subject: Uuid,
    partner_id: &str,
    fields: &[&str],
) -> QueryResult<()> {
    diesel::insert_into(disclosures::table)
        .values((
            disclosures::id.eq(Uuid::now_v7()),
            disclosures::subject_id.eq(subject),
            disclosures::partner_id.eq(partner_id),
            disclosures::fields.eq(fields.iter().map(|f| Some(*f)).collect::<Vec<_>>()),
        ))
        .execute(conn)
        .map(drop)
}

pub fn list_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<DisclosureRow>> {
    disclosures::table
        .filter(disclosures::subject_id.eq(subject))
        .order(disclosures::disclosed_at)
        .select(DisclosureRow::as_select())
        .load(conn)
}

/// Disclosures of `from`'s data now name `to`, after a merge.
pub fn update_subject(conn: &mut PgConnection, from: Uuid, to: Uuid) -> QueryResult<usize> {
    diesel::update(disclosures::table.filter(disclosures::subject_id.eq(from)))
        .set(disclosures::subject_id.eq(to))
        .execute(conn)
}

pub fn delete_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(disclosures::table.filter(disclosures::subject_id.eq(subject))).execute(conn)
}
