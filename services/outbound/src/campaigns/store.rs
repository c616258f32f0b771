//! The `campaigns` and `campaign_recipients` tables, and campaigns' messages.

use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use uuid::Uuid;

use crate::messages::domain::Status;
use crate::messages::store::MessageRow;
use crate::schema::outbound::{campaign_recipients, campaigns, messages};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = campaigns, check_for_backend(diesel::pg::Pg))]
pub struct CampaignRow {
    pub campaign_id: Uuid,
    pub name: String,
    pub segment: Option<String>,
    pub channel: String,
    pub template_key: String,
    pub locale: Option<String>,
    pub variables: serde_json::Value,
    pub purpose_key: String,
    pub marketing: bool,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub per_second: Option<i32>,
    pub state: String,
    pub recipients: i32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Rows of `messages` per INSERT: well under PostgreSQL's 65,535 parameters.
const MESSAGES_PER_INSERT: usize = 2_000;

pub fn insert(conn: &mut PgConnection, row: &CampaignRow) -> QueryResult<()> {
    diesel::insert_into(campaigns::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find_for_update(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<CampaignRow>> {
    campaigns::table
        .find(id)
        .select(CampaignRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<CampaignRow>> {
    campaigns::table
        .find(id)
        .select(CampaignRow::as_select())
        .first(conn)
        .optional()
}

/// Adds subjects to the list (those on it already once); returns the list's length.
pub fn add_recipients(conn: &mut PgConnection, id: Uuid, subjects: &[Uuid]) -> QueryResult<i64> {
    for chunk in subjects.chunks(10_000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|subject| {
                (
                    campaign_recipients::campaign_id.eq(id),
                    campaign_recipients::subject_id.eq(*subject),
                )
            })
            .collect();
        diesel::insert_into(campaign_recipients::table)
            .values(rows)
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    campaign_recipients::table
        .filter(campaign_recipients::campaign_id.eq(id))
        .select(count_star())
        .first(conn)
}

pub fn recipients(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<Uuid>> {
    campaign_recipients::table
        .filter(campaign_recipients::campaign_id.eq(id))
        .select(campaign_recipients::subject_id)
        .order(campaign_recipients::subject_id)
        .load(conn)
}

pub fn insert_messages(conn: &mut PgConnection, rows: &[MessageRow]) -> QueryResult<usize> {
    let mut inserted = 0;
    for chunk in rows.chunks(MESSAGES_PER_INSERT) {
        inserted += diesel::insert_into(messages::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(inserted)
}

pub fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let finished = matches!(state, "cancelled" | "completed").then_some(now);
    diesel::update(campaigns::table.find(id))
        .set((
            campaigns::state.eq(state),
            campaigns::finished_at.eq(finished),
        ))
        .execute(conn)
        .map(drop)
}

pub fn set_started(
    conn: &mut PgConnection,
    id: Uuid,
    recipients: i32,
    marketing: bool,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(campaigns::table.find(id))
        .set((
            campaigns::state.eq("running"),
            campaigns::recipients.eq(recipients),
            campaigns::marketing.eq(marketing),
            campaigns::started_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// The campaign's messages waiting for their turn, in the order they were due.
pub fn waiting(conn: &mut PgConnection, id: Uuid) -> QueryResult<Vec<(Uuid, DateTime<Utc>)>> {
    messages::table
        .filter(messages::campaign_id.eq(id))
        .filter(messages::status.eq(Status::Queued.as_str()))
        .order((messages::due_at, messages::message_id))
        .select((messages::message_id, messages::due_at))
        .load(conn)
}

/// Sets each message's due time, in one statement however many there are.
pub fn set_due(conn: &mut PgConnection, ids_and_due: &[(Uuid, DateTime<Utc>)]) -> QueryResult<()> {
    let (ids, due): (Vec<Uuid>, Vec<DateTime<Utc>>) = ids_and_due.iter().copied().unzip();
    diesel::sql_query(
        "UPDATE messages SET due_at = paced.due_at \
         FROM unnest($1, $2) AS paced(message_id, due_at) \
         WHERE messages.message_id = paced.message_id",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Timestamptz>, _>(due)
    .execute(conn)
    .map(drop)
}

/// Cancels the campaign's messages not yet in a channel's hands, taking them from the worker
/// that may hold one, so that it writes nothing over it; returns how many.
pub fn cancel_messages(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        messages::table
            .filter(messages::campaign_id.eq(id))
            .filter(messages::status.eq_any([Status::Queued.as_str(), Status::Deferred.as_str()])),
    )
    .set((
        messages::status.eq(Status::Cancelled.as_str()),
        messages::variables.eq(serde_json::Value::Object(serde_json::Map::new())),
        messages::reason.eq(None::<String>),
        messages::claimed_by.eq(None::<Uuid>),
        messages::claimed_until.eq(None::<DateTime<Utc>>),
        messages::updated_at.eq(now),
    ))
    .execute(conn)
}

/// The campaign's messages counted by status and reason.
pub fn counts(
    conn: &mut PgConnection,
    id: Uuid,
) -> QueryResult<Vec<(String, Option<String>, i64)>> {
    messages::table
        .filter(messages::campaign_id.eq(id))
        .group_by((messages::status, messages::reason))
        .select((messages::status, messages::reason, count_star()))
        .load(conn)
}

/// Messages taken by the queue only when they are not a campaign's, or their campaign runs.
#[diesel::dsl::auto_type]
pub fn running_or_none() -> _ {
    let running: &'static str = "running";
    messages::campaign_id
        .is_null()
        .or(messages::campaign_id.eq_any(
            campaigns::table
                .filter(campaigns::state.eq(running))
                .select(campaigns::campaign_id.nullable()),
        ))
}
