//! The `messages` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::outbound::messages;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub struct MessageRow {
    pub message_id: Uuid,
    pub subject_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub channel: String,
    pub purpose_key: String,
    pub marketing: bool,
    pub template_key: String,
    pub locale: Option<String>,
    pub variables: serde_json::Value,
    pub status: String,
    pub reason: Option<String>,
    pub detail: String,
    pub attempts: i32,
    pub due_at: DateTime<Utc>,
    pub claimed_by: Option<Uuid>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub rendered_locale: Option<String>,
    pub template_version: Option<i32>,
    pub provider_id: Option<String>,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Inserts a transactional message unless its (idempotency key, subject, channel) is taken;
/// returns the one stored, and whether it is this one.
pub fn insert_transactional(
    conn: &mut PgConnection,
    row: &MessageRow,
) -> QueryResult<(MessageRow, bool)> {
    let inserted = diesel::insert_into(messages::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)?;
    if inserted > 0 {
        return Ok((row.clone(), true));
    }
    messages::table
        .filter(messages::idempotency_key.eq(&row.idempotency_key))
        .filter(messages::subject_id.eq(row.subject_id))
        .filter(messages::channel.eq(&row.channel))
        .select(MessageRow::as_select())
        .first(conn)
        .map(|existing| (existing, false))
}

pub fn find(conn: &mut PgConnection, message_id: Uuid) -> QueryResult<Option<MessageRow>> {
    messages::table
        .find(message_id)
        .select(MessageRow::as_select())
        .first(conn)
        .optional()
}

/// A subject's messages newest first, before `before` (ids are time-ordered).
pub fn list_by_subject(
    conn: &mut PgConnection,
    subject_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    let mut query = messages::table
        .filter(messages::subject_id.eq(subject_id))
        .select(MessageRow::as_select())
        .order(messages::message_id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(messages::message_id.lt(before));
    }
    query.load(conn)
}
