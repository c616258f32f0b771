//! The life of a data subject request: submitted (awaiting the requester's verification, the
//! deadline paused), verified, approved, rejected, extended; every change audited.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::PgConnection;
use ecrm_crypto::MasterKey;
use ecrm_platform::Db;
use ecrm_platform::paging::Page;
use ecrm_proto::ecrm::common::v1::PageResponse;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::deadline::{self, MAX_EXTENSION_MONTHS};
use super::store::{self, EventRow, RequestFilter, RequestRow};
use super::verification::{NO_OUTBOUND, Verification};
use crate::caller::Caller;
use crate::error::ConsentError;

const MAX_REASON_CHARS: usize = 1000;
/// Corrections one rectification request may carry.
pub const MAX_CORRECTIONS: usize = 50;
const MAX_FIELD_CHARS: usize = 100;
const MAX_VALUE_BYTES: usize = 16 * 1024;

/// A correction the subject asks for (Art. 16): a field, as the service holding it names it,
/// and the correct value as JSON (`null` removes an inaccurate value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub field: String,
    pub value_json: String,
}

/// Checks a request's corrections: RECTIFICATION needs 1 to 50, one per field, each value
/// JSON; other requests carry none.
pub fn check_corrections(
    kind: RequestKind,
    corrections: &[Correction],
) -> Result<(), ConsentError> {
    if kind != RequestKind::Rectification {
        return if corrections.is_empty() {
            Ok(())
        } else {
            Err(ConsentError::invalid(
                "corrections",
                "only a rectification request carries corrections",
            ))
        };
    }
    if corrections.is_empty() || corrections.len() > MAX_CORRECTIONS {
        return Err(ConsentError::invalid(
            "corrections",
            format!("a rectification names 1 to {MAX_CORRECTIONS} corrections"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, correction) in corrections.iter().enumerate() {
        let field = &correction.field;
        if field.is_empty()
            || field.len() > MAX_FIELD_CHARS
            || !field.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
            })
        {
            return Err(ConsentError::invalid(
                format!("corrections[{i}].field"),
                format!(
                    "1 to {MAX_FIELD_CHARS} characters among a-z, 0-9, '_', '.' and '-', e.g. \"family_name\""
                ),
            ));
        }
        if !seen.insert(field.as_str()) {
            return Err(ConsentError::invalid(
                format!("corrections[{i}].field"),
                format!("{field:?} is corrected twice"),
            ));
        }
        if correction.value_json.len() > MAX_VALUE_BYTES
            || serde_json::from_str::<serde_json::Value>(&correction.value_json).is_err()
        {
            return Err(ConsentError::invalid(
                format!("corrections[{i}].value_json"),
                format!("a JSON value of at most {MAX_VALUE_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// Where a request's sealed corrections are bound.
fn corrections_context(request: Uuid) -> Vec<u8> {
    format!("consent.request_corrections:{request}").into_bytes()
}

/// The corrections of a rectification request still to carry out.
pub fn open_corrections(
    master: &MasterKey,
    row: &RequestRow,
) -> Result<Vec<Correction>, ConsentError> {
    let sealed = row.sealed_corrections.as_ref().ok_or_else(|| {
        ConsentError::FailedPrecondition("the request holds no corrections any more".to_owned())
    })?;
    let plain = master
        .open(&corrections_context(row.id), sealed)
        .map_err(|_| ConsentError::Corrupt)?;
    serde_json::from_slice(&plain).map_err(|_| ConsentError::Corrupt)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Access,
    Portability,
    Erasure,
    Rectification,
    Restriction,
    LiftRestriction,
    Objection,
}

impl RequestKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Portability => "portability",
            RequestKind::Erasure => "erasure",
            RequestKind::Rectification => "rectification",
            RequestKind::Restriction => "restriction",
            RequestKind::LiftRestriction => "lift_restriction",
            RequestKind::Objection => "objection",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            RequestKind::Access,
            RequestKind::Portability,
            RequestKind::Erasure,
            RequestKind::Rectification,
            RequestKind::Restriction,
            RequestKind::LiftRestriction,
            RequestKind::Objection,
        ]
        .into_iter()
        .find(|k| k.as_str() == stored)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    AwaitingVerification,
    AwaitingApproval,
    InProgress,
    Completed,
    Rejected,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::AwaitingVerification => "awaiting_verification",
            Status::AwaitingApproval => "awaiting_approval",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Rejected => "rejected",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            Status::AwaitingVerification,
            Status::AwaitingApproval,
            Status::InProgress,
            Status::Completed,
            Status::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == stored)
    }

    fn is_open(self) -> bool {
        !matches!(self, Status::Completed | Status::Rejected)
    }
}

/// A request to record.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub subject_id: Uuid,
    pub kind: RequestKind,
    pub channel: &'static str,
    pub received_at: DateTime<Utc>,
    /// Rectification only.
    pub corrections: Vec<Correction>,
}

/// A request as stored, with its history and its tasks.
#[derive(Debug, Clone)]
pub struct Request {
    pub row: RequestRow,
    pub history: Vec<EventRow>,
    pub tasks: Vec<crate::orchestration::store::TaskState>,
}

impl Request {
    /// The deadline as of `today`: while the requester is being verified, each day paused so
    /// far moves it on.
    pub fn due_on(&self, today: NaiveDate) -> NaiveDate {
        match self.row.paused_since {
            None => self.row.due_on,
            Some(since) => {
                let days = deadline::paused_days(since.date_naive(), today);
                self.row
                    .due_on
                    .checked_add_days(chrono::Days::new(u64::from(days)))
                    .unwrap_or(NaiveDate::MAX)
            }
        }
    }
}

/// A reason an operator must give: 1 to 1000 characters.
pub fn check_reason(field: &str, reason: &str) -> Result<String, ConsentError> {
    let reason = reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON_CHARS
        || reason.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(ConsentError::invalid(
            field,
            format!("1 to {MAX_REASON_CHARS} characters, no control characters"),
        ));
    }
    Ok(reason.to_owned())
}

#[derive(Debug, Clone)]
pub struct Requests {
    pub(super) db: Db,
    /// The services holding personal data that approved requests are carried out at.
    targets: Vec<String>,
    /// Wakes the worker when an approval creates tasks.
    tasks_created: Arc<tokio::sync::Notify>,
    /// Seals the corrections a rectification carries.
    master: Arc<MasterKey>,
    /// Sends requesters their verification codes.
    pub(super) verification: Arc<Verification>,
}

impl Requests {
    pub fn new(
        db: Db,
        targets: Vec<String>,
        master: Arc<MasterKey>,
        verification: Arc<Verification>,
    ) -> Self {
        Self {
            db,
            targets,
            tasks_created: Arc::default(),
            master,
            verification,
        }
    }

    /// The same requests, sending codes with `verification` (approvals wake the same worker).
    #[must_use]
    pub fn with_verification(&self, verification: Arc<Verification>) -> Self {
        Self {
            verification,
            ..self.clone()
        }
    }

    /// Notified when an approval creates tasks.
    pub fn tasks_created(&self) -> Arc<tokio::sync::Notify> {
        self.tasks_created.clone()
    }

    /// Records the request, then sends the requester a verification code when outbound is
    /// configured; what came of that is on the request, which is recorded either way.
    pub async fn submit(&self, caller: Caller, new: NewRequest) -> Result<Request, ConsentError> {
        if new.received_at > Utc::now() + chrono::Duration::minutes(5) {
            return Err(ConsentError::invalid("received_at", "is in the future"));
        }
        check_corrections(new.kind, &new.corrections)?;
        let id = Uuid::now_v7();
        let sealed_corrections = if new.corrections.is_empty() {
            None
        } else {
            let plain = serde_json::to_vec(&new.corrections).map_err(|_| ConsentError::Corrupt)?;
            Some(
                self.master
                    .seal(&corrections_context(id), &plain)
                    .map_err(|_| ConsentError::Corrupt)?,
            )
        };
        let corrected_fields = new
            .corrections
            .iter()
            .map(|c| Some(c.field.clone()))
            .collect();
        let sends_codes = self.verification.sends_codes();
        let submitted = self
            .db
            .run(move |conn| {
                let now = Utc::now();
                let row = RequestRow {
                    id,
                    subject_id: new.subject_id,
                    kind: new.kind.as_str().to_owned(),
                    status: Status::AwaitingVerification.as_str().to_owned(),
                    channel: new.channel.to_owned(),
                    received_at: new.received_at,
                    due_on: deadline::due_on(new.received_at.date_naive(), 0, 0),
                    // The deadline waits from receipt until the requester is verified.
                    paused_since: Some(new.received_at.min(now)),
                    paused_days: 0,
                    extension_months: 0,
                    extension_reason: None,
                    rejection_reason: None,
                    submitted_by: caller.principal.subject.clone(),
                    updated_at: now,
                    sealed_corrections,
                    corrected_fields,
                    verification_code_expires_at: None,
                    verification_failed_attempts: 0,
                    verification_codes_sent: 0,
                    verification_sent_at: None,
                    verification_error: (!sends_codes).then(|| NO_OUTBOUND.to_owned()),
                    verification_message_id: None,
                };
                store::insert(conn, &row)?;
                audit(
                    conn,
                    &caller,
                    row.id,
                    None,
                    Status::AwaitingVerification,
                    format!("{} request received", new.kind.as_str()),
                )?;
                load(conn, row.id)
            })
            .await?;
        if sends_codes {
            self.send_code(None, submitted.row.id).await
        } else {
            Ok(submitted)
        }
    }

    /// The requester is who they claim: the deadline runs again, moved by the days it waited.
    pub async fn verify(
        &self,
        caller: Caller,
        id: Uuid,
        reason: String,
    ) -> Result<Request, ConsentError> {
        self.transition_then(
            caller,
            id,
            move |row| {
                expect_status(row, &[Status::AwaitingVerification])?;
                Ok(mark_verified(row, &reason))
            },
            |conn, row| Ok(store::update_forget_code(conn, row.id)?),
        )
        .await
    }

    /// Approves the request; its tasks at every service are created in the same transaction.
    pub async fn approve(&self, caller: Caller, id: Uuid) -> Result<Request, ConsentError> {
        let targets = self.targets.clone();
        let approver = caller.clone();
        // Carrying the tasks out continues the approval's trace, whenever and wherever it runs.
        let traceparent = ecrm_platform::propagation::current_traceparent();
        let approved = self
            .transition_then(
                caller,
                id,
                |row| {
                    expect_status(row, &[Status::AwaitingApproval])?;
                    Ok((Status::InProgress, "approved".to_owned()))
                },
                move |conn, row| {
                    let kind = RequestKind::parse(&row.kind).ok_or(ConsentError::Corrupt)?;
                    if kind == RequestKind::Objection {
                        // Consent's own to carry out, at once, in this transaction.
                        let withdrawn =
                            super::objection::carry_out(conn, &approver, row.subject_id, row.id)?;
                        let note = format!(
                            "objection to direct marketing recorded; {withdrawn} grants withdrawn"
                        );
                        complete(conn, row.id, &note)?;
                        return Ok(());
                    }
                    let tasks = crate::orchestration::worker::tasks_for(kind, &targets);
                    crate::orchestration::store::insert_tasks(
                        conn,
                        row.id,
                        &tasks,
                        traceparent.as_deref(),
                    )?;
                    Ok(())
                },
            )
            .await;
        if approved.is_ok() {
            self.tasks_created.notify_one();
        }
        approved
    }

    pub async fn reject(
        &self,
        caller: Caller,
        id: Uuid,
        reason: String,
    ) -> Result<Request, ConsentError> {
        self.transition_then(
            caller,
            id,
            move |row| {
                expect_status(
                    row,
                    &[
                        Status::AwaitingVerification,
                        Status::AwaitingApproval,
                        Status::InProgress,
                    ],
                )?;
                row.rejection_reason = Some(reason.clone());
                row.paused_since = None;
                Ok((Status::Rejected, format!("rejected: {reason}")))
            },
            |conn, row| {
                store::update_forget_corrections(conn, row.id)?;
                Ok(store::update_forget_code(conn, row.id)?)
            },
        )
        .await
    }

    /// Extends the deadline once, by 1 or 2 months (Art. 12(3)).
    pub async fn extend(
        &self,
        caller: Caller,
        id: Uuid,
        months: u32,
        reason: String,
    ) -> Result<Request, ConsentError> {
        if !(1..=MAX_EXTENSION_MONTHS).contains(&months) {
            return Err(ConsentError::invalid(
                "months",
                format!("1 to {MAX_EXTENSION_MONTHS}"),
            ));
        }
        self.transition(caller, id, move |row| {
            let status = Status::parse(&row.status).ok_or(ConsentError::Corrupt)?;
            if !status.is_open() {
                return Err(ConsentError::FailedPrecondition(format!(
                    "the request is {}: its deadline no longer runs",
                    status.as_str()
                )));
            }
            if row.extension_months > 0 {
                return Err(ConsentError::FailedPrecondition(
                    "the deadline was extended already; it may be extended once".to_owned(),
                ));
            }
            row.extension_months = i32::try_from(months).unwrap_or_default();
            row.extension_reason = Some(reason.clone());
            refresh_due(row);
            Ok((
                status,
                format!("deadline extended by {months} months: {reason}"),
            ))
        })
        .await
    }

    /// An operator marks the request carried out, with a note; refused while a task of it is
    /// pending (tasks a service refused are the operator's to carry out).
    pub async fn complete_by_operator(
        &self,
        caller: Caller,
        id: Uuid,
        note: String,
    ) -> Result<Request, ConsentError> {
        self.transition_then(
            caller,
            id,
            move |row| {
                expect_status(row, &[Status::InProgress])?;
                Ok((
                    Status::Completed,
                    format!("carried out by an operator: {note}"),
                ))
            },
            |conn, row| {
                if crate::orchestration::store::none_pending(conn, row.id)? {
                    store::update_forget_corrections(conn, row.id)?;
                    Ok(())
                } else {
                    Err(ConsentError::FailedPrecondition(
                        "tasks of the request are still pending at services holding personal data"
                            .to_owned(),
                    ))
                }
            },
        )
        .await
    }

    pub async fn get(&self, id: Uuid) -> Result<Request, ConsentError> {
        self.db.run(move |conn| load(conn, id)).await
    }

    pub async fn list(
        &self,
        filter: RequestFilter,
        page: Page,
    ) -> Result<(Vec<Request>, PageResponse), ConsentError> {
        self.db
            .run(move |conn| {
                let rows = store::list_by_urgency(conn, &filter, page.after, page.limit())?;
                let (rows, next) = page.finish(rows, |row| row.id);
                let requests = rows
                    .into_iter()
                    .map(|row| {
                        let history = store::list_events(conn, row.id)?;
                        let tasks = crate::orchestration::store::list_by_request(conn, row.id)?;
                        Ok(Request {
                            row,
                            history,
                            tasks,
                        })
                    })
                    .collect::<Result<_, ConsentError>>()?;
                Ok((requests, next))
            })
            .await
    }

    /// Applies `change` to the locked request and records the new status with its note.
    async fn transition<F>(
        &self,
        caller: Caller,
        id: Uuid,
        change: F,
    ) -> Result<Request, ConsentError>
    where
        F: FnOnce(&mut RequestRow) -> Result<(Status, String), ConsentError> + Send + 'static,
    {
        self.transition_then(caller, id, change, |_, _| Ok(()))
            .await
    }

    /// [`Requests::transition`], then `then` in the same transaction.
    async fn transition_then<F, G>(
        &self,
        caller: Caller,
        id: Uuid,
        change: F,
        then: G,
    ) -> Result<Request, ConsentError>
    where
        F: FnOnce(&mut RequestRow) -> Result<(Status, String), ConsentError> + Send + 'static,
        G: FnOnce(&mut PgConnection, &RequestRow) -> Result<(), ConsentError> + Send + 'static,
    {
        self.db
            .run(move |conn| {
                let mut row = store::lock(conn, id)?.ok_or(ConsentError::NotFound("request"))?;
                let from = Status::parse(&row.status).ok_or(ConsentError::Corrupt)?;
                let (to, note) = change(&mut row)?;
                row.status = to.as_str().to_owned();
                store::update(conn, &row)?;
                audit(conn, &caller, id, Some(from), to, note)?;
                then(conn, &row)?;
                load(conn, id)
            })
            .await
    }
}

/// Marks the request carried out, as the service itself, in the caller's transaction, if it
/// is still in progress; returns whether it did.
pub fn complete(conn: &mut PgConnection, id: Uuid, note: &str) -> Result<bool, ConsentError> {
    let mut row = store::lock(conn, id)?.ok_or(ConsentError::NotFound("request"))?;
    if row.status != Status::InProgress.as_str() {
        return Ok(false);
    }
    row.status = Status::Completed.as_str().to_owned();
    store::update(conn, &row)?;
    store::update_forget_corrections(conn, id)?;
    let mut note = note.to_owned();
    let uncorrected = uncorrected_fields(conn, &row)?;
    if !uncorrected.is_empty() {
        note.push_str(&format!(
            "; no service holds {}: an operator corrects them or tells the requester",
            uncorrected.join(", ")
        ));
    }
    audit(
        conn,
        &Caller::service(),
        id,
        Some(Status::InProgress),
        Status::Completed,
        note,
    )?;
    Ok(true)
}

/// The fields a rectification asked to correct that no service corrected.
fn uncorrected_fields(
    conn: &mut PgConnection,
    row: &RequestRow,
) -> Result<Vec<String>, ConsentError> {
    if row.corrected_fields.is_empty() {
        return Ok(Vec::new());
    }
    let corrected: std::collections::HashSet<String> =
        crate::orchestration::store::list_by_request(conn, row.id)?
            .into_iter()
            .flat_map(|task| task.corrected_fields.into_iter().flatten())
            .collect();
    Ok(row
        .corrected_fields
        .iter()
        .flatten()
        .filter(|field| !corrected.contains(*field))
        .cloned()
        .collect())
}

/// The requester is who they claim, for `reason`: the deadline runs again, moved by the days
/// it waited. The new status and the note to record.
pub(super) fn mark_verified(row: &mut RequestRow, reason: &str) -> (Status, String) {
    let since = row.paused_since.unwrap_or(row.received_at);
    let days = deadline::paused_days(since.date_naive(), Utc::now().date_naive());
    row.paused_days = row
        .paused_days
        .saturating_add(i32::try_from(days).unwrap_or(i32::MAX));
    row.paused_since = None;
    refresh_due(row);
    (
        Status::AwaitingApproval,
        format!("requester verified ({days} days paused): {reason}"),
    )
}

pub(super) fn expect_status(row: &RequestRow, allowed: &[Status]) -> Result<(), ConsentError> {
    let status = Status::parse(&row.status).ok_or(ConsentError::Corrupt)?;
    if allowed.contains(&status) {
        Ok(())
    } else {
        Err(ConsentError::FailedPrecondition(format!(
            "the request is {}",
            status.as_str()
        )))
    }
}

fn refresh_due(row: &mut RequestRow) {
    row.due_on = deadline::due_on(
        row.received_at.date_naive(),
        u32::try_from(row.paused_days).unwrap_or_default(),
        u32::try_from(row.extension_months).unwrap_or_default(),
    );
}

pub(super) fn audit(
    conn: &mut PgConnection,
    caller: &Caller,
    request: Uuid,
    from: Option<Status>,
    to: Status,
    note: String,
) -> Result<(), ConsentError> {
    store::insert_event(
        conn,
        &EventRow {
            id: Uuid::now_v7(),
            request_id: request,
            from_status: from.map(|s| s.as_str().to_owned()),
            to_status: to.as_str().to_owned(),
            principal: caller.principal.subject.clone(),
            principal_kind: caller.principal.kind.as_str().to_owned(),
            at: Utc::now(),
            note,
        },
    )?;
    Ok(())
}

pub(super) fn load(conn: &mut PgConnection, id: Uuid) -> Result<Request, ConsentError> {
    let row = store::find(conn, id)?.ok_or(ConsentError::NotFound("request"))?;
    let history = store::list_events(conn, id)?;
    let tasks = crate::orchestration::store::list_by_request(conn, id)?;
    Ok(Request {
        row,
        history,
        tasks,
    })
}
