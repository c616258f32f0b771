//! What a change is.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::ProfilesError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Created,
    Updated,
    Merged,
    Erased,
    Restricted,
    InteractionRecorded,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 6] = [
        ChangeKind::Created,
        ChangeKind::Updated,
        ChangeKind::Merged,
        ChangeKind::Erased,
        ChangeKind::Restricted,
        ChangeKind::InteractionRecorded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Merged => "merged",
            ChangeKind::Erased => "erased",
            ChangeKind::Restricted => "restricted",
            ChangeKind::InteractionRecorded => "interaction_recorded",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == stored)
    }
}

/// A change to record.
#[derive(Debug, Clone, Copy)]
pub struct NewChange {
    pub kind: ChangeKind,
    pub subject_id: Uuid,
    pub merged_subject_id: Option<Uuid>,
    pub restricted: Option<bool>,
    pub interaction_id: Option<Uuid>,
}

impl NewChange {
    pub fn of(kind: ChangeKind, subject_id: Uuid) -> Self {
        Self {
            kind,
            subject_id,
            merged_subject_id: None,
            restricted: None,
            interaction_id: None,
        }
    }
}

/// A recorded change, as the feed returns it.
#[derive(Debug, Clone)]
pub struct Change {
    pub cursor: Cursor,
    pub kind: ChangeKind,
    pub subject_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub merged_subject_id: Option<Uuid>,
    pub restricted: Option<bool>,
}

/// A position in the feed: the writing transaction's id, then the change's sequence number.
pub use ecrm_platform::feed::FeedCursor as Cursor;

/// The cursor a request's `field` holds.
pub fn decode_cursor(field: &str, token: &str) -> Result<Cursor, ProfilesError> {
    Cursor::decode(token)
        .ok_or_else(|| ProfilesError::invalid(field, "not a cursor from this service"))
}

/// Wakes the feed's readers in this process when changes commit; readers also poll, for
/// changes written by other replicas.
pub type ChangeSignal = std::sync::Arc<tokio::sync::Notify>;
