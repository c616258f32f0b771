//! The queue's statements: claiming due messages, and writing down what became of them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::messages::domain::{Reason, Status};
use crate::messages::store::MessageRow;
use crate::schema::outbound::{channel_pauses, messages};

/// Claims up to `limit` due messages for `worker` until `until`: those waiting, and those a
/// worker that stopped answering held past its claim. Channels paused by their provider are
/// left alone. SKIP LOCKED lets workers claim side by side, never the same message.
pub fn claim(
    conn: &mut PgConnection,
    worker: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    let paused: Vec<String> = channel_pauses::table
        .filter(channel_pauses::paused_until.gt(now))
        .select(channel_pauses::channel)
        .load(conn)?;
    let ids: Vec<Uuid> = messages::table
        .filter(messages::status.eq_any([
            Status::Queued.as_str(),
            Status::Deferred.as_str(),
            Status::Sending.as_str(),
        ]))
        .filter(messages::due_at.le(now))
        .filter(
            messages::claimed_until
                .is_null()
                .or(messages::claimed_until.lt(now)),
        )
        .filter(messages::channel.ne_all(&paused))
        .filter(crate::campaigns::store::running_or_none())
        .order(messages::due_at)
        .limit(limit)
        .select(messages::message_id)
        .for_update()
        .skip_locked()
        .load(conn)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(messages::table.filter(messages::message_id.eq_any(&ids)))
        .set((
            messages::claimed_by.eq(worker),
            messages::claimed_until.eq(until),
        ))
        .returning(MessageRow::as_returning())
        .get_results(conn)
}

/// What is written of a message when its turn ends.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub reason: Option<Reason>,
    pub detail: String,
    /// Attempts that reached the provider this time: 0 or 1.
    pub attempted: i32,
    pub due_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub rendered: Option<(String, i32)>,
    pub provider_id: Option<String>,
}

impl Outcome {
    pub fn new(status: Status, reason: Option<Reason>, detail: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            detail: detail.into(),
            attempted: 0,
            due_at: None,
            sent_at: None,
            rendered: None,
            provider_id: None,
        }
    }
}

/// The columns a finished turn sets; None leaves a column as it is.
#[derive(AsChangeset)]
#[diesel(table_name = messages)]
struct Finished<'a> {
    status: &'a str,
    reason: Option<Option<&'a str>>,
    detail: &'a str,
    due_at: Option<DateTime<Utc>>,
    claimed_by: Option<Option<Uuid>>,
    claimed_until: Option<Option<DateTime<Utc>>>,
    sent_at: Option<DateTime<Utc>>,
    provider_id: Option<&'a str>,
    rendered_locale: Option<&'a str>,
    template_version: Option<i32>,
    variables: Option<serde_json::Value>,
    updated_at: DateTime<Utc>,
}

/// Writes down `outcome` and releases the claim, if `worker` still holds the message;
/// returns whether it did.
pub fn finish(
    conn: &mut PgConnection,
    worker: Uuid,
    message_id: Uuid,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let finished = Finished {
        status: outcome.status.as_str(),
        reason: Some(outcome.reason.map(Reason::as_str)),
        detail: &outcome.detail,
        due_at: outcome.due_at,
        claimed_by: Some(None),
        claimed_until: Some(None),
        sent_at: outcome.sent_at,
        provider_id: outcome.provider_id.as_deref(),
        rendered_locale: outcome.rendered.as_ref().map(|(locale, _)| locale.as_str()),
        template_version: outcome.rendered.as_ref().map(|(_, version)| *version),
        // The caller's variables are needed only to render; once the message is done with,
        // they go (they may hold personal data, or a verification code).
        variables: matches!(
            outcome.status,
            Status::Sent | Status::Blocked | Status::Failed | Status::Cancelled
        )
        .then(|| serde_json::Value::Object(serde_json::Map::new())),
        updated_at: now,
    };
    diesel::update(
        messages::table
            .filter(messages::message_id.eq(message_id))
            .filter(messages::claimed_by.eq(worker)),
    )
    .set((
        finished,
        messages::attempts.eq(messages::attempts + outcome.attempted),
    ))
    .execute(conn)
    .map(|n| n > 0)
}

/// Extends the claims `worker` still holds to `until`; returns how many.
pub fn extend(conn: &mut PgConnection, worker: Uuid, until: DateTime<Utc>) -> QueryResult<usize> {
    diesel::update(messages::table.filter(messages::claimed_by.eq(worker)))
        .set(messages::claimed_until.eq(until))
        .execute(conn)
}

/// Gives up `worker`'s claims, as they were, for another worker to take now.
pub fn release(conn: &mut PgConnection, worker: Uuid) -> QueryResult<usize> {
    diesel::update(messages::table.filter(messages::claimed_by.eq(worker)))
        .set((
            messages::claimed_by.eq(None::<Uuid>),
            messages::claimed_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
}

/// Pauses `channel` until `until` (a later pause already set stands).
pub fn pause_channel(
    conn: &mut PgConnection,
    channel: &str,
    until: DateTime<Utc>,
    detail: &str,
) -> QueryResult<()> {
    diesel::insert_into(channel_pauses::table)
        .values((
            channel_pauses::channel.eq(channel),
            channel_pauses::paused_until.eq(until),
            channel_pauses::detail.eq(detail),
        ))
        .on_conflict(channel_pauses::channel)
        .do_update()
        .set((
            channel_pauses::paused_until.eq(diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                "GREATEST(channel_pauses.paused_until, excluded.paused_until)",
            )),
            channel_pauses::detail.eq(detail),
        ))
        .execute(conn)
        .map(drop)
}
