//! The `tier_programs` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::segmentation::tier_programs;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tier_programs, check_for_backend(diesel::pg::Pg))]
pub struct TierProgramRow {
    pub name: String,
    pub description: String,
    pub measure: String,
    pub window_days: i32,
    /// `[{"name": .., "threshold": ..}, ..]`, lowest first.
    pub tiers: serde_json::Value,
    pub retain_days: i32,
    pub downgrade: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Inserts the program unless one of its name exists; returns whether it did.
pub fn insert(conn: &mut PgConnection, row: &TierProgramRow) -> QueryResult<bool> {
    diesel::insert_into(tier_programs::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

pub fn find(conn: &mut PgConnection, name: &str) -> QueryResult<Option<TierProgramRow>> {
    tier_programs::table
        .find(name)
        .select(TierProgramRow::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<TierProgramRow>> {
    tier_programs::table
        .order(tier_programs::name)
        .select(TierProgramRow::as_select())
        .load(conn)
}
