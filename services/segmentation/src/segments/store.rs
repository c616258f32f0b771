//! The `segments` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::segmentation::segments;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = segments, check_for_backend(diesel::pg::Pg))]
pub struct SegmentRow {
    pub name: String,
    pub description: String,
    pub rule: String,
    pub fields: Vec<Option<String>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// When the first pass over every customer finished.
    pub populated_at: Option<DateTime<Utc>>,
}

/// Inserts the segment unless one of its name exists; returns whether it did.
pub fn insert(conn: &mut PgConnection, row: &SegmentRow) -> QueryResult<bool> {
    diesel::insert_into(segments::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

pub fn find(conn: &mut PgConnection, name: &str) -> QueryResult<Option<SegmentRow>> {
    segments::table
        .find(name)
        .select(SegmentRow::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<SegmentRow>> {
    segments::table
        .order(segments::name)
        .select(SegmentRow::as_select())
        .load(conn)
}
