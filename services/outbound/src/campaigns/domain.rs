//! A campaign's life: a draft, started (its messages queued, paced), paused and resumed,
//! cancelled, completed when nothing is left to send.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ecrm_platform::Db;
use uuid::Uuid;

use super::store::{self, CampaignRow};
use crate::delivery::Channels;
use crate::error::OutboundError;
use crate::messages::domain::{Reason, Status, check_template, parse_variables};
use crate::messages::store::MessageRow;
use crate::purposes::{PurposeKind, Purposes};
use crate::segments_client::SegmentsClient;
use crate::templates::domain::{Channel, check_key, check_locale};

const MAX_NAME_CHARS: usize = 200;
const MAX_RECIPIENTS_PER_CALL: usize = 10_000;
const MAX_PER_SECOND: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Draft,
    Running,
    Paused,
    Cancelled,
    Completed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Draft,
            Self::Running,
            Self::Paused,
            Self::Cancelled,
            Self::Completed,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }
}

/// A campaign as asked to be created.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub segment: Option<String>,
    pub channel: Channel,
    pub template_key: String,
    pub locale: String,
    pub variables_json: String,
    pub purpose_key: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub per_second: u32,
    pub subject_ids: Vec<String>,
}

/// What became of a campaign's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued: u64,
    pub sent: u64,
    pub deferred: u64,
    pub blocked: BTreeMap<String, u64>,
    pub failed: u64,
    pub cancelled: u64,
}

fn parse_subjects(field: &str, ids: &[String]) -> Result<Vec<Uuid>, OutboundError> {
    if ids.len() > MAX_RECIPIENTS_PER_CALL {
        return Err(OutboundError::invalid(
            field,
            format!("at most {MAX_RECIPIENTS_PER_CALL} a call"),
        ));
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            Uuid::parse_str(id)
                .map_err(|_| OutboundError::invalid(format!("{field}[{i}]"), "not a UUID"))
        })
        .collect()
}

fn parse_id(value: &str) -> Result<Uuid, OutboundError> {
    Uuid::parse_str(value).map_err(|_| OutboundError::invalid("campaign_id", "not a UUID"))
}

fn wrong_state(row: &CampaignRow, wanted: &str) -> OutboundError {
    OutboundError::FailedPrecondition(format!("the campaign is {}: {wanted}", row.state))
}

/// When the `i`th message of a campaign starting at `start` is due, at `per_second`.
fn paced(start: DateTime<Utc>, per_second: Option<i32>, i: usize) -> DateTime<Utc> {
    match per_second {
        Some(rate) if rate > 0 => {
            let micros = (i as f64) * 1_000_000.0 / f64::from(rate);
            start + chrono::Duration::microseconds(micros as i64)
        }
        _ => start,
    }
}

pub struct Campaigns {
    db: Db,
    purposes: Arc<Purposes>,
    channels: Arc<Channels>,
    segments: Option<SegmentsClient>,
}

impl std::fmt::Debug for Campaigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaigns").finish_non_exhaustive()
    }
}

impl Campaigns {
    pub fn new(
        db: Db,
        purposes: Arc<Purposes>,
        channels: Arc<Channels>,
        segments: Option<SegmentsClient>,
    ) -> Self {
        Self {
            db,
            purposes,
            channels,
            segments,
        }
    }

    async fn kind(&self, purpose: &str, channel: Channel) -> Result<PurposeKind, OutboundError> {
        self.purposes
            .usable("campaign.purpose_key", purpose, channel)
            .await
    }

    pub async fn create(&self, by: String, new: NewCampaign) -> Result<CampaignRow, OutboundError> {
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(OutboundError::invalid(
                "campaign.name",
                format!("1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        let subjects = match &new.segment {
            Some(_) if !new.subject_ids.is_empty() => {
                return Err(OutboundError::invalid(
                    "subject_ids",
                    "a campaign to a segment takes no explicit list",
                ));
            }
            Some(_) if self.segments.is_none() => {
                return Err(OutboundError::FailedPrecondition(
                    "no segmentation service is configured (--segmentation-url)".to_owned(),
                ));
            }
            _ => parse_subjects("subject_ids", &new.subject_ids)?,
        };
        check_key("campaign.template_key", &new.template_key)?;
        let locale = Some(new.locale).filter(|l| !l.is_empty());
        if let Some(locale) = &locale {
            check_locale("campaign.locale", locale)?;
        }
        let variables = parse_variables("campaign.variables_json", &new.variables_json)?;
        if new.purpose_key.is_empty() {
            return Err(OutboundError::invalid("campaign.purpose_key", "required"));
        }
        if new.per_second > MAX_PER_SECOND {
            return Err(OutboundError::invalid(
                "campaign.per_second",
                format!("at most {MAX_PER_SECOND}"),
            ));
        }
        if !self.channels.configured(new.channel) {
            return Err(OutboundError::FailedPrecondition(format!(
                "the {} channel is not configured on this service",
                new.channel.as_str()
            )));
        }
        let kind = self.kind(&new.purpose_key, new.channel).await?;
        let row = CampaignRow {
            campaign_id: Uuid::now_v7(),
            name,
            segment: new.segment,
            channel: new.channel.as_str().to_owned(),
            template_key: new.template_key,
            locale,
            variables,
            purpose_key: new.purpose_key,
            marketing: kind == PurposeKind::Marketing,
            scheduled_at: new.scheduled_at,
            per_second: (new.per_second > 0)
                .then(|| i32::try_from(new.per_second).unwrap_or(i32::MAX)),
            state: State::Draft.as_str().to_owned(),
            recipients: 0,
            created_by: by,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        };
        self.db
            .run(move |conn| {
                check_template(
                    conn,
                    &row.template_key,
                    new.channel,
                    row.locale.as_deref(),
                    &row.variables,
                )
                .map_err(|error| match error {
                    OutboundError::InvalidArgument { field, reason } => {
                        OutboundError::InvalidArgument {
                            field: format!("campaign.{field}"),
                            reason,
                        }
                    }
                    other => other,
                })?;
                store::insert(conn, &row)?;
                let recipients = store::add_recipients(conn, row.campaign_id, &subjects)?;
                Ok(CampaignRow {
                    recipients: i32::try_from(recipients).unwrap_or(i32::MAX),
                    ..row
                })
            })
            .await
    }

    pub async fn add_recipients(
        &self,
        id: &str,
        subject_ids: &[String],
    ) -> Result<CampaignRow, OutboundError> {
        let id = parse_id(id)?;
        let subjects = parse_subjects("subject_ids", subject_ids)?;
        self.db
            .run(move |conn| {
                let row =
                    store::find_for_update(conn, id)?.ok_or(OutboundError::NotFound("campaign"))?;
                if row.segment.is_some() {
                    return Err(OutboundError::FailedPrecondition(
                        "the campaign goes to a segment, not to a list".to_owned(),
                    ));
                }
                if row.state != State::Draft.as_str() {
                    return Err(wrong_state(&row, "recipients are added to drafts"));
                }
                let recipients = store::add_recipients(conn, id, &subjects)?;
                Ok(CampaignRow {
                    recipients: i32::try_from(recipients).unwrap_or(i32::MAX),
                    ..row
                })
            })
            .await
    }

    /// Queues one message per recipient, paced from the schedule (or now).
    pub async fn start(&self, by: String, id: &str) -> Result<CampaignRow, OutboundError> {
        let id = parse_id(id)?;
        let row = self
            .db
            .run(move |conn| store::find(conn, id)?.ok_or(OutboundError::NotFound("campaign")))
            .await?;
        if row.state != State::Draft.as_str() {
            return Err(wrong_state(&row, "only a draft starts"));
        }
        // The purpose's basis as it is now, not as it was when the draft was made.
        let channel = Channel::parse(&row.channel).ok_or(OutboundError::Corrupt)?;
        let marketing = self.kind(&row.purpose_key, channel).await? == PurposeKind::Marketing;
        let members = match (&row.segment, &self.segments) {
            (Some(segment), Some(segments)) => {
                Some(segments.members(segment).await.map_err(|status| {
                    if status.code() == tonic::Code::NotFound {
                        OutboundError::FailedPrecondition(format!(
                            "segmentation has no segment {segment:?}"
                        ))
                    } else {
                        OutboundError::Unavailable(format!("segmentation: {}", status.message()))
                    }
                })?)
            }
            (Some(_), None) => {
                return Err(OutboundError::FailedPrecondition(
                    "no segmentation service is configured (--segmentation-url)".to_owned(),
                ));
            }
            (None, _) => None,
        };
        self.db
            .run(move |conn| {
                let row =
                    store::find_for_update(conn, id)?.ok_or(OutboundError::NotFound("campaign"))?;
                if row.state != State::Draft.as_str() {
                    return Err(wrong_state(&row, "only a draft starts"));
                }
                if let Some(members) = &members {
                    store::add_recipients(conn, id, members)?;
                }
                let recipients = store::recipients(conn, id)?;
                let now = Utc::now();
                let start = row.scheduled_at.map_or(now, |at| at.max(now));
                let channel = Channel::parse(&row.channel).ok_or(OutboundError::Corrupt)?;
                let messages: Vec<MessageRow> = recipients
                    .iter()
                    .enumerate()
                    .map(|(i, subject)| MessageRow {
                        message_id: Uuid::now_v7(),
                        subject_id: *subject,
                        campaign_id: Some(id),
                        idempotency_key: None,
                        channel: channel.as_str().to_owned(),
                        purpose_key: row.purpose_key.clone(),
                        marketing,
                        template_key: row.template_key.clone(),
                        locale: row.locale.clone(),
                        variables: row.variables.clone(),
                        status: Status::Queued.as_str().to_owned(),
                        reason: None,
                        detail: String::new(),
                        attempts: 0,
                        due_at: paced(start, row.per_second, i),
                        claimed_by: None,
                        claimed_until: None,
                        rendered_locale: None,
                        template_version: None,
                        provider_id: None,
                        requested_by: by.clone(),
                        created_at: now,
                        updated_at: now,
                        sent_at: None,
                    })
                    .collect();
                store::insert_messages(conn, &messages)?;
                let count = i32::try_from(messages.len()).unwrap_or(i32::MAX);
                store::set_started(conn, id, count, marketing, now)?;
                store::find(conn, id)?.ok_or(OutboundError::Corrupt)
            })
            .await
    }

    async fn transition(
        &self,
        id: &str,
        from: &'static [State],
        to: State,
    ) -> Result<CampaignRow, OutboundError> {
        let id = parse_id(id)?;
        self.db
            .run(move |conn| {
                let row =
                    store::find_for_update(conn, id)?.ok_or(OutboundError::NotFound("campaign"))?;
                let state = State::parse(&row.state).ok_or(OutboundError::Corrupt)?;
                if !from.contains(&state) {
                    return Err(wrong_state(&row, &format!("cannot become {}", to.as_str())));
                }
                let now = Utc::now();
                match to {
                    State::Running => {
                        // Resumed: the pace starts again from now.
                        let waiting = store::waiting(conn, id)?;
                        let due: Vec<_> = waiting
                            .iter()
                            .enumerate()
                            .map(|(i, (message, _))| (*message, paced(now, row.per_second, i)))
                            .collect();
                        store::set_due(conn, &due)?;
                    }
                    State::Cancelled => {
                        store::cancel_messages(conn, id, now)?;
                    }
                    _ => {}
                }
                store::set_state(conn, id, to.as_str(), now)?;
                store::find(conn, id)?.ok_or(OutboundError::Corrupt)
            })
            .await
    }

    pub async fn pause(&self, id: &str) -> Result<CampaignRow, OutboundError> {
        self.transition(id, &[State::Running], State::Paused).await
    }

    pub async fn resume(&self, id: &str) -> Result<CampaignRow, OutboundError> {
        self.transition(id, &[State::Paused], State::Running).await
    }

    pub async fn cancel(&self, id: &str) -> Result<CampaignRow, OutboundError> {
        self.transition(
            id,
            &[State::Draft, State::Running, State::Paused],
            State::Cancelled,
        )
        .await
    }

    /// The campaign, marked completed first when it ran out of messages to send.
    pub async fn get(&self, id: &str) -> Result<(CampaignRow, Stats), OutboundError> {
        let id = parse_id(id)?;
        self.db
            .run(move |conn| {
                let mut row = store::find(conn, id)?.ok_or(OutboundError::NotFound("campaign"))?;
                let mut stats = Stats::default();
                for (status, reason, count) in store::counts(conn, id)? {
                    let count = u64::try_from(count).unwrap_or_default();
                    match Status::parse(&status) {
                        Some(Status::Queued | Status::Sending) => stats.queued += count,
                        Some(Status::Deferred) => stats.deferred += count,
                        Some(Status::Sent) => stats.sent += count,
                        Some(Status::Blocked) => {
                            let reason = reason
                                .as_deref()
                                .and_then(Reason::parse)
                                .map_or("unspecified", Reason::as_str);
                            *stats.blocked.entry(reason.to_owned()).or_default() += count;
                        }
                        Some(Status::Failed) => stats.failed += count,
                        Some(Status::Cancelled) => stats.cancelled += count,
                        None => {}
                    }
                }
                if row.state == State::Running.as_str() && stats.queued == 0 && stats.deferred == 0
                {
                    let now = Utc::now();
                    store::set_state(conn, id, State::Completed.as_str(), now)?;
                    row.state = State::Completed.as_str().to_owned();
                    row.finished_at = Some(now);
                }
                Ok((row, stats))
            })
            .await
    }
}
