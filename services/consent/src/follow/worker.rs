//! What consent takes from the profiles change feed: merges and orders, applied as the
//! platform's follower reads them (cursor kept with the effects, so each applies once).

use diesel::PgConnection;
use ecrm_platform::profiles_feed::ChangeSink;
use ecrm_platform::time::from_timestamp;
use ecrm_proto::ecrm::profiles::v1 as pb;
use uuid::Uuid;

use super::domain::{FeedChange, apply};
use crate::error::ConsentError;

/// Consent's side of the profiles feed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsentSink;

/// What consent makes of a change; `None` for changes it has nothing to do with.
fn feed_change(change: &pb::Change) -> Result<Option<FeedChange>, ConsentError> {
    let subject = |value: &str| Uuid::parse_str(value).map_err(|_| ConsentError::Corrupt);
    let at = change
        .occurred_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or(ConsentError::Corrupt)?;
    Ok(match change.kind() {
        pb::ChangeKind::Merged => Some(FeedChange::Merged {
            into: subject(&change.subject_id)?,
            merged: subject(&change.merged_subject_id)?,
            at,
        }),
        pb::ChangeKind::InteractionRecorded => match &change.interaction {
            Some(interaction) if interaction.kind() == pb::InteractionKind::Order => {
                Some(FeedChange::Purchased {
                    subject: subject(&change.subject_id)?,
                    at: interaction
                        .occurred_at
                        .as_ref()
                        .and_then(from_timestamp)
                        .unwrap_or(at),
                })
            }
            _ => None,
        },
        _ => None,
    })
}

impl ChangeSink for ConsentSink {
    type Error = ConsentError;

    fn kinds(&self) -> Vec<pb::ChangeKind> {
        vec![pb::ChangeKind::Merged, pb::ChangeKind::InteractionRecorded]
    }

    fn apply(&self, conn: &mut PgConnection, changes: &[pb::Change]) -> Result<(), ConsentError> {
        let changes: Vec<FeedChange> = changes
            .iter()
            .filter_map(|change| feed_change(change).transpose())
            .collect::<Result<_, _>>()?;
        apply(conn, &changes)
    }
}
