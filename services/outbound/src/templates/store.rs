//! The `templates` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::outbound::templates;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = templates, check_for_backend(diesel::pg::Pg))]
pub struct TemplateRow {
    pub key: String,
    pub channel: String,
    pub locale: String,
    pub subject: String,
    pub body: String,
    pub variables: Vec<Option<String>>,
    pub version: i32,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// Inserts the template unless one of its key, channel and locale exists; returns whether it
/// did.
pub fn insert(conn: &mut PgConnection, row: &TemplateRow) -> QueryResult<bool> {
    diesel::insert_into(templates::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

/// The template, locked until the transaction ends.
pub fn find_for_update(
    conn: &mut PgConnection,
    key: &str,
    channel: &str,
    locale: &str,
) -> QueryResult<Option<TemplateRow>> {
    templates::table
        .find((key, channel, locale))
        .select(TemplateRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn find(
    conn: &mut PgConnection,
    key: &str,
    channel: &str,
    locale: &str,
) -> QueryResult<Option<TemplateRow>> {
    templates::table
        .find((key, channel, locale))
        .select(TemplateRow::as_select())
        .first(conn)
        .optional()
}

/// Every locale's version of the template of `key` on `channel`.
pub fn of_key(conn: &mut PgConnection, key: &str, channel: &str) -> QueryResult<Vec<TemplateRow>> {
    templates::table
        .filter(templates::key.eq(key))
        .filter(templates::channel.eq(channel))
        .select(TemplateRow::as_select())
        .order(templates::locale)
        .load(conn)
}

/// Replaces the template's content with `row`'s, at `row.version`.
pub fn update(conn: &mut PgConnection, row: &TemplateRow) -> QueryResult<()> {
    diesel::update(templates::table.find((&row.key, &row.channel, &row.locale)))
        .set((
            templates::subject.eq(&row.subject),
            templates::body.eq(&row.body),
            templates::variables.eq(&row.variables),
            templates::version.eq(row.version),
            templates::updated_by.eq(&row.updated_by),
            templates::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(drop)
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<TemplateRow>> {
    templates::table
        .order((templates::key, templates::channel, templates::locale))
        .select(TemplateRow::as_select())
        .load(conn)
}
