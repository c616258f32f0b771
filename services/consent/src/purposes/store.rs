//! The `purposes` and `notices` tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::consent::{notices, purposes};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = purposes, check_for_backend(diesel::pg::Pg))]
pub struct PurposeRow {
    pub key: String,
    pub id: Uuid,
    pub description: String,
    pub lawful_basis: String,
    pub channels: Vec<Option<String>>,
    pub data_categories: Vec<Option<String>>,
    pub retention_days: i32,
    pub created_at: DateTime<Utc>,
    pub direct_marketing: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = purposes)]
pub struct NewPurpose<'a> {
    pub key: &'a str,
    pub id: Uuid,
    pub description: &'a str,
    pub lawful_basis: &'a str,
    pub channels: Vec<&'a str>,
    pub data_categories: Vec<String>,
    pub retention_days: i32,
    pub direct_marketing: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = notices)]
pub struct NewNotice<'a> {
    pub purpose_key: &'a str,
    pub version: &'a str,
    pub text: &'a str,
}

/// Inserts the purpose unless its key exists; returns whether it did.
pub fn insert_purpose(conn: &mut PgConnection, purpose: &NewPurpose<'_>) -> QueryResult<bool> {
    diesel::insert_into(purposes::table)
        .values(purpose)
        .on_conflict(purposes::key)
        .do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

pub fn find_purpose(conn: &mut PgConnection, key: &str) -> QueryResult<Option<PurposeRow>> {
    purposes::table
        .find(key)
        .select(PurposeRow::as_select())
        .first(conn)
        .optional()
}

/// Every purpose of direct marketing.
pub fn list_direct_marketing(conn: &mut PgConnection) -> QueryResult<Vec<PurposeRow>> {
    purposes::table
        .filter(purposes::direct_marketing)
        .order(purposes::id)
        .select(PurposeRow::as_select())
        .load(conn)
}

pub fn list_purposes_after(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<PurposeRow>> {
    let mut query = purposes::table
        .order(purposes::id)
        .limit(limit)
        .select(PurposeRow::as_select())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(purposes::id.gt(after));
    }
    query.load(conn)
}

/// Inserts the notice unless that version exists; returns whether it did.
pub fn insert_notice(conn: &mut PgConnection, notice: &NewNotice<'_>) -> QueryResult<bool> {
    diesel::insert_into(notices::table)
        .values(notice)
        .on_conflict((notices::purpose_key, notices::version))
        .do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

/// When the notice was published, if it was.
pub fn find_notice(
    conn: &mut PgConnection,
    purpose_key: &str,
    version: &str,
) -> QueryResult<Option<DateTime<Utc>>> {
    notices::table
        .find((purpose_key, version))
        .select(notices::published_at)
        .first(conn)
        .optional()
}

pub fn list_notice_versions(
    conn: &mut PgConnection,
    purpose_key: &str,
) -> QueryResult<Vec<String>> {
    notices::table
        .filter(notices::purpose_key.eq(purpose_key))
        .order((notices::published_at, notices::version))
        .select(notices::version)
        .load(conn)
}
