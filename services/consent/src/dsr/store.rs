//! The `requests` and `request_events` tables.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::consent::{request_events, requests};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = requests, check_for_backend(diesel::pg::Pg))]
pub struct RequestRow {
    pub id: Uuid,
    pub subject_id: Uuid,
    #[diesel(column_name = type_)]
    pub kind: String,
    pub status: String,
    pub channel: String,
    pub received_at: DateTime<Utc>,
    pub due_on: NaiveDate,
    pub paused_since: Option<DateTime<Utc>>,
    pub paused_days: i32,
    pub extension_months: i32,
    pub extension_reason: Option<String>,
    pub rejection_reason: Option<String>,
    pub submitted_by: String,
    pub updated_at: DateTime<Utc>,
    /// Rectification: the corrections, sealed, until the request is carried out.
    pub sealed_corrections: Option<Vec<u8>>,
    /// Rectification: the fields to correct.
    pub corrected_fields: Vec<Option<String>>,
    /// When the latest verification code stops working; None when none was issued.
    pub verification_code_expires_at: Option<DateTime<Utc>>,
    /// Wrong codes entered against the latest code.
    pub verification_failed_attempts: i32,
    /// Codes issued so far; the latest is number `verification_codes_sent - 1`.
    pub verification_codes_sent: i32,
    /// When outbound accepted the latest code's message.
    pub verification_sent_at: Option<DateTime<Utc>>,
    /// Why the latest code could not be sent.
    pub verification_error: Option<String>,
    /// Outbound's message carrying the latest code.
    pub verification_message_id: Option<String>,
}

/// What a code is checked against: its salt and MAC, never the code.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = requests, check_for_backend(diesel::pg::Pg))]
pub struct CodeRow {
    #[diesel(column_name = verification_code_salt)]
    pub salt: Option<Vec<u8>>,
    #[diesel(column_name = verification_code_mac)]
    pub mac: Option<Vec<u8>>,
}

/// A new verification code, replacing the one before.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = requests, treat_none_as_null = true)]
pub struct CodeChangeset {
    pub verification_code_salt: Option<Vec<u8>>,
    pub verification_code_mac: Option<Vec<u8>>,
    pub verification_code_expires_at: Option<DateTime<Utc>>,
    pub verification_failed_attempts: i32,
    pub verification_codes_sent: i32,
    pub verification_sent_at: Option<DateTime<Utc>>,
    pub verification_error: Option<String>,
    pub verification_message_id: Option<String>,
}

/// What came of sending a code: accepted by outbound, or why not.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = requests, treat_none_as_null = true)]
pub struct SendingChangeset {
    pub verification_sent_at: Option<DateTime<Utc>>,
    pub verification_message_id: Option<String>,
    pub verification_error: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = request_events, check_for_backend(diesel::pg::Pg))]
pub struct EventRow {
    pub id: Uuid,
    pub request_id: Uuid,
    pub from_status: Option<String>,
    pub to_status: String,
    pub principal: String,
    pub principal_kind: String,
    pub at: DateTime<Utc>,
    pub note: String,
}

pub fn insert(conn: &mut PgConnection, row: &RequestRow) -> QueryResult<()> {
    diesel::insert_into(requests::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn insert_event(conn: &mut PgConnection, row: &EventRow) -> QueryResult<()> {
    diesel::insert_into(request_events::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The request, locked for the rest of the transaction.
pub fn lock(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<RequestRow>> {
    requests::table
        .find(id)
        .for_update()
        .select(RequestRow::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<RequestRow>> {
    requests::table
        .find(id)
        .select(RequestRow::as_select())
        .first(conn)
        .optional()
}

/// Saves the request's state (its row is locked by the caller).
pub fn update(conn: &mut PgConnection, row: &RequestRow) -> QueryResult<()> {
    diesel::update(requests::table.find(row.id))
        .set((
            requests::status.eq(&row.status),
            requests::due_on.eq(row.due_on),
            requests::paused_since.eq(row.paused_since),
            requests::paused_days.eq(row.paused_days),
            requests::extension_months.eq(row.extension_months),
            requests::extension_reason.eq(&row.extension_reason),
            requests::rejection_reason.eq(&row.rejection_reason),
            requests::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(drop)
}

/// Every request about `subject`, oldest first.
pub fn list_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<RequestRow>> {
    requests::table
        .filter(requests::subject_id.eq(subject))
        .order((requests::received_at, requests::id))
        .select(RequestRow::as_select())
        .load(conn)
}

pub fn list_events(conn: &mut PgConnection, request: Uuid) -> QueryResult<Vec<EventRow>> {
    request_events::table
        .filter(request_events::request_id.eq(request))
        .order((request_events::at, request_events::id))
        .select(EventRow::as_select())
        .load(conn)
}

/// What `ListRequests` filters on; empty lists mean every value.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub statuses: Vec<&'static str>,
    pub kinds: Vec<&'static str>,
    pub due_on_or_before: Option<NaiveDate>,
}

/// Requests most urgent first (due date, then receipt, then id), after the request `after`.
pub fn list_by_urgency(
    conn: &mut PgConnection,
    filter: &RequestFilter,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<RequestRow>> {
    let mut query = requests::table
        .order((requests::due_on, requests::received_at, requests::id))
        .limit(limit)
        .select(RequestRow::as_select())
        .into_boxed();
    if !filter.statuses.is_empty() {
        query = query.filter(requests::status.eq_any(filter.statuses.clone()));
    }
    if !filter.kinds.is_empty() {
        query = query.filter(requests::type_.eq_any(filter.kinds.clone()));
    }
    if let Some(day) = filter.due_on_or_before {
        query = query.filter(requests::due_on.le(day));
    }
    if let Some(after) = after.map(|id| find(conn, id)).transpose()?.flatten() {
        query = query.filter(
            requests::due_on
                .gt(after.due_on)
                .or(requests::due_on.eq(after.due_on).and(
                    requests::received_at
                        .gt(after.received_at)
                        .or(requests::received_at
                            .eq(after.received_at)
                            .and(requests::id.gt(after.id))),
                )),
        );
    }
    query.load(conn)
}

/// Forgets the corrections of a request carried out or rejected: the services hold the
/// corrected values now.
pub fn update_forget_corrections(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::update(requests::table.find(id))
        .set(requests::sealed_corrections.eq(None::<Vec<u8>>))
        .execute(conn)
}

/// Forgets the corrections of every request of `subject`: they are its personal data.
pub fn update_forget_corrections_of(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::update(
        requests::table
            .filter(requests::subject_id.eq(subject))
            .filter(requests::sealed_corrections.is_not_null()),
    )
    .set(requests::sealed_corrections.eq(None::<Vec<u8>>))
    .execute(conn)
}

pub fn find_code(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<CodeRow>> {
    requests::table
        .find(id)
        .select(CodeRow::as_select())
        .first(conn)
        .optional()
}

pub fn update_code(conn: &mut PgConnection, id: Uuid, code: &CodeChangeset) -> QueryResult<()> {
    diesel::update(requests::table.find(id))
        .set(code)
        .execute(conn)
        .map(drop)
}

/// Records what came of sending code number `number`, unless a newer code replaced it
/// meanwhile; returns whether it did.
pub fn update_sending(
    conn: &mut PgConnection,
    id: Uuid,
    number: i32,
    sending: &SendingChangeset,
) -> QueryResult<bool> {
    diesel::update(
        requests::table
            .find(id)
            .filter(requests::verification_codes_sent.eq(number + 1)),
    )
    .set(sending)
    .execute(conn)
    .map(|rows| rows > 0)
}

pub fn update_failed_attempts(conn: &mut PgConnection, id: Uuid, attempts: i32) -> QueryResult<()> {
    diesel::update(requests::table.find(id))
        .set(requests::verification_failed_attempts.eq(attempts))
        .execute(conn)
        .map(drop)
}

/// Forgets the code of a verified requester: it has served.
pub fn update_forget_code(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(requests::table.find(id))
        .set((
            requests::verification_code_salt.eq(None::<Vec<u8>>),
            requests::verification_code_mac.eq(None::<Vec<u8>>),
        ))
        .execute(conn)
        .map(drop)
}
