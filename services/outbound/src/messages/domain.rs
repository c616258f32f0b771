//! Queuing transactional messages, and reading what became of messages.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use ecrm_platform::Db;
use ecrm_platform::paging::Page;
use ecrm_proto::ecrm::common::v1::PageResponse;
use uuid::Uuid;

use super::store::{self, MessageRow};
use crate::delivery::Channels;
use crate::error::OutboundError;
use crate::purposes::{PurposeKind, Purposes};
use crate::templates::domain::{Channel, check_key, check_locale};
use crate::templates::store as templates_store;

const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Deferred,
    Sending,
    Sent,
    Blocked,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Deferred,
        Self::Sending,
        Self::Sent,
        Self::Blocked,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Deferred => "deferred",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Blocked => "blocked",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// Why a message was blocked, deferred or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Withdrawn,
    Expired,
    NeverAsked,
    Objected,
    Restricted,
    Suppressed,
    FrequencyCap,
    NoAddress,
    UnknownSubject,
    Unsubscribed,
    QuietHours,
    RateLimited,
    GateUnavailable,
    TransientFailure,
    PermanentFailure,
    AttemptsExhausted,
    TemplateFailed,
    ChannelNotConfigured,
}

impl Reason {
    pub const ALL: [Self; 18] = [
        Self::Withdrawn,
        Self::Expired,
        Self::NeverAsked,
        Self::Objected,
        Self::Restricted,
        Self::Suppressed,
        Self::FrequencyCap,
        Self::NoAddress,
        Self::UnknownSubject,
        Self::Unsubscribed,
        Self::QuietHours,
        Self::RateLimited,
        Self::GateUnavailable,
        Self::TransientFailure,
        Self::PermanentFailure,
        Self::AttemptsExhausted,
        Self::TemplateFailed,
        Self::ChannelNotConfigured,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
            Self::NeverAsked => "never_asked",
            Self::Objected => "objected",
            Self::Restricted => "restricted",
            Self::Suppressed => "suppressed",
            Self::FrequencyCap => "frequency_cap",
            Self::NoAddress => "no_address",
            Self::UnknownSubject => "unknown_subject",
            Self::Unsubscribed => "unsubscribed",
            Self::QuietHours => "quiet_hours",
            Self::RateLimited => "rate_limited",
            Self::GateUnavailable => "gate_unavailable",
            Self::TransientFailure => "transient_failure",
            Self::PermanentFailure => "permanent_failure",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::TemplateFailed => "template_failed",
            Self::ChannelNotConfigured => "channel_not_configured",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }
}

/// A transactional message as asked to be sent.
#[derive(Debug, Clone)]
pub struct NewTransactional {
    pub subject_id: String,
    pub channel: Channel,
    pub template_key: String,
    pub locale: String,
    pub variables_json: String,
    pub purpose_key: String,
    pub idempotency_key: String,
}

/// `variables_json` as a JSON object; empty is `{}`.
pub fn parse_variables(field: &str, json: &str) -> Result<serde_json::Value, OutboundError> {
    if json.trim().is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err(OutboundError::invalid(field, "not a JSON object")),
        Err(error) => Err(OutboundError::invalid(field, format!("not JSON: {error}"))),
    }
}

pub fn parse_subject_id(field: &str, value: &str) -> Result<Uuid, OutboundError> {
    Uuid::parse_str(value).map_err(|_| OutboundError::invalid(field, "not a UUID"))
}

/// Checks that a template of `key` exists on `channel` (in `locale` when given) and that
/// `variables` holds every variable each candidate version declares, so rendering at send
/// time cannot fail for want of one.
pub fn check_template(
    conn: &mut diesel::PgConnection,
    key: &str,
    channel: Channel,
    locale: Option<&str>,
    variables: &serde_json::Value,
) -> Result<(), OutboundError> {
    let candidates: Vec<_> = templates_store::of_key(conn, key, channel.as_str())?
        .into_iter()
        .filter(|row| locale.is_none_or(|locale| row.locale == locale))
        .collect();
    if candidates.is_empty() {
        return Err(OutboundError::invalid(
            "template_key",
            match locale {
                Some(locale) => format!("no template {key:?} for the channel in locale {locale:?}"),
                None => format!("no template {key:?} for the channel"),
            },
        ));
    }
    let given: BTreeSet<&str> = variables
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for row in &candidates {
        if let Some(missing) = row
            .variables
            .iter()
            .flatten()
            .find(|name| !given.contains(name.as_str()))
        {
            return Err(OutboundError::invalid(
                "variables_json",
                format!(
                    "misses {missing:?}, which template {key:?} ({}) reads",
                    row.locale
                ),
            ));
        }
    }
    Ok(())
}

pub struct Messages {
    db: Db,
    purposes: Arc<Purposes>,
    channels: Arc<Channels>,
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages").finish_non_exhaustive()
    }
}

impl Messages {
    pub fn new(db: Db, purposes: Arc<Purposes>, channels: Arc<Channels>) -> Self {
        Self {
            db,
            purposes,
            channels,
        }
    }

    /// Queues the message, once per (idempotency key, subject, channel): the same again
    /// returns the first one.
    pub async fn send_transactional(
        &self,
        by: String,
        request: NewTransactional,
    ) -> Result<(MessageRow, bool), OutboundError> {
        let subject_id = parse_subject_id("subject_id", &request.subject_id)?;
        check_key("template_key", &request.template_key)?;
        let locale = Some(request.locale).filter(|l| !l.is_empty());
        if let Some(locale) = &locale {
            check_locale("locale", locale)?;
        }
        let variables = parse_variables("variables_json", &request.variables_json)?;
        let key = request.idempotency_key;
        if key.is_empty()
            || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
            || key.chars().any(char::is_control)
        {
            return Err(OutboundError::invalid(
                "idempotency_key",
                format!("1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters"),
            ));
        }
        if request.purpose_key.is_empty() {
            return Err(OutboundError::invalid("purpose_key", "required"));
        }
        if !self.channels.configured(request.channel) {
            return Err(OutboundError::FailedPrecondition(format!(
                "the {} channel is not configured on this service",
                request.channel.as_str()
            )));
        }
        let kind = self
            .purposes
            .usable("purpose_key", &request.purpose_key, request.channel)
            .await?;
        if kind == PurposeKind::Marketing {
            return Err(OutboundError::FailedPrecondition(format!(
                "purpose {:?} does not rest on a contract or a legal obligation: \
                 marketing messages are sent through campaigns",
                request.purpose_key
            )));
        }
        let now = Utc::now();
        let row = MessageRow {
            message_id: Uuid::now_v7(),
            subject_id,
            campaign_id: None,
            idempotency_key: Some(key),
            channel: request.channel.as_str().to_owned(),
            purpose_key: request.purpose_key,
            marketing: false,
            template_key: request.template_key,
            locale,
            variables,
            status: Status::Queued.as_str().to_owned(),
            reason: None,
            detail: String::new(),
            attempts: 0,
            due_at: now,
            claimed_by: None,
            claimed_until: None,
            rendered_locale: None,
            template_version: None,
            provider_id: None,
            requested_by: by,
            created_at: now,
            updated_at: now,
            sent_at: None,
        };
        self.db
            .run(move |conn| {
                check_template(
                    conn,
                    &row.template_key,
                    request.channel,
                    row.locale.as_deref(),
                    &row.variables,
                )?;
                Ok(store::insert_transactional(conn, &row)?)
            })
            .await
    }

    pub async fn get(&self, message_id: &str) -> Result<MessageRow, OutboundError> {
        let id = Uuid::parse_str(message_id)
            .map_err(|_| OutboundError::invalid("message_id", "not a UUID"))?;
        self.db
            .run(move |conn| store::find(conn, id)?.ok_or(OutboundError::NotFound("message")))
            .await
    }

    /// A page of the subject's messages, newest first.
    pub async fn list(
        &self,
        subject_id: &str,
        page: Page,
    ) -> Result<(Vec<MessageRow>, PageResponse), OutboundError> {
        let subject_id = parse_subject_id("subject_id", subject_id)?;
        let rows = self
            .db
            .run(move |conn| {
                Ok::<_, OutboundError>(store::list_by_subject(
                    conn,
                    subject_id,
                    page.after,
                    page.limit(),
                )?)
            })
            .await?;
        Ok(page.finish(rows, |row| row.message_id))
    }
}
