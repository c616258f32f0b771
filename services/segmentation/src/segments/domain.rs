//! Defining segments, and evaluating one for one customer with the reasons.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ecrm_platform::Db;
use ecrm_platform::feed::{FeedCursor, FollowOptions, follow};
use ecrm_platform::money::minor_units;
use ecrm_platform::paging::Page;
use ecrm_proto::ecrm::common::v1::PageResponse;
use futures::Stream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::facts;
use super::members::{self, EventRow};
use super::store::{self, SegmentRow};
use crate::error::SegmentationError;
use crate::rules::{Explanation, Rule};

const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1000;
/// How often a membership stream reads again when nothing in this process woke it.
const WATCH_POLL: Duration = Duration::from_secs(1);
/// Changes a membership stream reads at once.
const WATCH_BATCH: usize = 500;

/// A segment's name: 1 to 64 of a-z, 0-9, '_' and '-'.
pub fn check_name(field: &str, name: &str) -> Result<(), SegmentationError> {
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
    {
        return Err(SegmentationError::invalid(
            field,
            format!("1 to {MAX_NAME_CHARS} characters among a-z, 0-9, '_' and '-'"),
        ));
    }
    Ok(())
}

/// A rule, parsed and checked against the fields segments can read.
fn parse(rule: &str) -> Result<Rule, crate::rules::RuleError> {
    Rule::parse(rule, &facts::field_type)
}

/// What a segment says of one customer.
#[derive(Debug, Clone)]
pub struct Membership {
    pub member: bool,
    pub restricted: bool,
    pub objected: bool,
    /// `None` when the customer is restricted or objected: their facts are not read.
    pub explanation: Option<Explanation>,
}

#[derive(Debug, Clone)]
pub struct Segments {
    db: Db,
    /// Digits of the reporting currency's minor units, to give amounts in major units.
    minor_units: u32,
    /// Notified when membership changes commit in this process.
    changed: Arc<Notify>,
    /// Notified when a segment is defined, to start populating it.
    sweep: Arc<Notify>,
    shutdown: CancellationToken,
}

impl Segments {
    pub fn new(
        db: Db,
        reporting_currency: &str,
        changed: Arc<Notify>,
        sweep: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            db,
            minor_units: minor_units(reporting_currency),
            changed,
            sweep,
            shutdown,
        }
    }

    /// Defines a segment; the same definition again changes nothing and returns `false`.
    pub async fn define(
        &self,
        by: String,
        name: String,
        description: String,
        rule: String,
    ) -> Result<(SegmentRow, bool), SegmentationError> {
        check_name("segment.name", &name)?;
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(SegmentationError::invalid(
                "segment.description",
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        let parsed = parse(&rule)
            .map_err(|error| SegmentationError::invalid("segment.rule", error.to_string()))?;
        let row = SegmentRow {
            name,
            description,
            rule: parsed.source().to_owned(),
            fields: parsed.fields().into_iter().map(Some).collect(),
            created_by: by,
            created_at: Utc::now(),
            populated_at: None,
        };
        let sweep = self.sweep.clone();
        let defined = self
            .db
            .run(move |conn| {
                if store::insert(conn, &row)? {
                    return Ok((row, true));
                }
                let existing = store::find(conn, &row.name)?.ok_or(SegmentationError::Corrupt)?;
                if existing.rule == row.rule && existing.description == row.description {
                    Ok((existing, false))
                } else {
                    Err(SegmentationError::AlreadyExists(format!(
                        "a segment named {:?} exists with another rule; choose another name",
                        row.name
                    )))
                }
            })
            .await?;
        // Populate it now rather than at the upkeep's next look.
        sweep.notify_one();
        Ok(defined)
    }

    pub async fn list(&self) -> Result<Vec<SegmentRow>, SegmentationError> {
        self.db
            .run(|conn| Ok::<_, SegmentationError>(store::list(conn)?))
            .await
    }

    /// Whether `subject` is in the segment now, and why. A customer the projection does not
    /// know has no facts: every condition on them is false.
    pub async fn membership(
        &self,
        segment: String,
        subject: Uuid,
    ) -> Result<Membership, SegmentationError> {
        let now = Utc::now();
        let (row, timeline) = self
            .db
            .run(move |conn| {
                let row =
                    store::find(conn, &segment)?.ok_or(SegmentationError::NotFound("segment"))?;
                let timeline = facts::load(conn, &[subject], now)?.remove(&subject);
                Ok::<_, SegmentationError>((row, timeline))
            })
            .await?;
        let rule = parse(&row.rule).map_err(|_| SegmentationError::Corrupt)?;
        let facts = match timeline {
            Some(timeline) if timeline.excluded() => {
                return Ok(Membership {
                    member: false,
                    restricted: timeline.restricted(),
                    objected: timeline.objected(),
                    explanation: None,
                });
            }
            Some(timeline) => timeline.facts_at(now, self.minor_units),
            None => HashMap::new(),
        };
        let explanation = rule.evaluate(&facts);
        Ok(Membership {
            member: explanation.matched,
            restricted: false,
            objected: false,
            explanation: Some(explanation),
        })
    }

    /// A page of the segment's members, their number, and the membership stream's position
    /// before the page was read.
    pub async fn members(
        &self,
        segment: String,
        page: Page,
    ) -> Result<MembersPage, SegmentationError> {
        self.db
            .run(move |conn| {
                let row =
                    store::find(conn, &segment)?.ok_or(SegmentationError::NotFound("segment"))?;
                if row.populated_at.is_none() {
                    return Err(SegmentationError::FailedPrecondition(format!(
                        "segment {segment:?} is still being populated; try again shortly"
                    )));
                }
                // Read first: every change before it is in the page read after.
                let cursor = members::last_event(conn)?;
                let rows = members::list_members(conn, &segment, page.after, page.limit())?;
                let total = members::count_members(conn, &segment)?;
                let (members, page) = page.finish(rows, |row| row.0);
                Ok(MembersPage {
                    members,
                    page,
                    total: u64::try_from(total).unwrap_or(0),
                    cursor,
                })
            })
            .await
    }

    /// Refuses a cursor from before the joins and leaves kept: a watcher resuming from it would
    /// miss changes.
    pub async fn check_cursor(&self, cursor: FeedCursor) -> Result<(), SegmentationError> {
        if cursor == FeedCursor::default() {
            return Ok(());
        }
        let horizon = self
            .db
            .run(|conn| Ok::<_, SegmentationError>(members::horizon(conn)?))
            .await?;
        match horizon {
            Some(horizon) if cursor < horizon => {
                Err(SegmentationError::FailedPrecondition(format!(
                    "the cursor is older than the {} days of joins and leaves kept: read the members \
                 again with GetMembers and watch from its cursor",
                    members::HISTORY_DAYS
                )))
            }
            _ => Ok(()),
        }
    }

    /// Joins and leaves after `cursor`, of `segments` (all when empty), as they commit.
    pub fn watch(
        &self,
        cursor: FeedCursor,
        segments: Vec<String>,
    ) -> impl Stream<Item = Result<EventRow, tonic::Status>> + Send + use<> {
        let options = FollowOptions {
            signal: self.changed.clone(),
            poll_interval: WATCH_POLL,
            gather: Duration::ZERO,
            shutdown: self.shutdown.clone(),
            batch: WATCH_BATCH,
        };
        let db = self.db.clone();
        follow(cursor, options, move |after, limit| {
            let (db, segments) = (db.clone(), segments.clone());
            async move {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let events = db
                    .run(move |conn| {
                        Ok::<_, SegmentationError>(members::list_events_after(
                            conn, after, &segments, limit,
                        )?)
                    })
                    .await?;
                Ok(events
                    .into_iter()
                    .map(|event| {
                        let at = FeedCursor {
                            tx: event.tx,
                            seq: event.seq,
                        };
                        (at, event)
                    })
                    .collect())
            }
        })
    }
}

/// A page of members.
#[derive(Debug, Clone)]
pub struct MembersPage {
    /// Subject and when it joined.
    pub members: Vec<(Uuid, DateTime<Utc>)>,
    pub page: PageResponse,
    pub total: u64,
    pub cursor: FeedCursor,
}
