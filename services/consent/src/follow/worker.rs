//! The follower: reads profiles' `WatchChanges` from the cursor kept in consent's database and
//! applies each change with the cursor in one transaction, so a restart of either side
//! resumes exactly where it stopped. It reconnects with backoff when the stream breaks.

use std::sync::Arc;
use std::time::Duration;

use ecrm_auth::{TokenSource, bearer_request};
use ecrm_platform::Db;
use ecrm_platform::time::from_timestamp;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use super::domain::{FeedChange, apply};
use super::store;
use crate::error::ConsentError;

/// The feed's name in `feed_cursors`.
const FEED: &str = "profiles";
const PROFILES: &str = "profiles";
/// Changes applied in one transaction at most.
const BATCH: usize = 500;
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct ProfilesFeed {
    db: Db,
    profiles: Channel,
    tokens: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for ProfilesFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilesFeed").finish_non_exhaustive()
    }
}

fn unavailable(status: tonic::Status) -> ConsentError {
    ConsentError::Unavailable {
        service: PROFILES,
        status,
    }
}

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

impl ProfilesFeed {
    pub fn new(db: Db, profiles: Channel, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            db,
            profiles,
            tokens,
        }
    }

    /// Follows the feed until `shutdown`.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            loop {
                let followed = tokio::select! {
                    () = shutdown.cancelled() => return,
                    followed = self.follow() => followed,
                };
                match followed {
                    // Some changes were applied: the connection was good.
                    Ok(true) => backoff = MIN_BACKOFF,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot follow the profiles change feed; will retry");
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// Reads the feed from the stored cursor until the stream ends or fails; returns whether
    /// it applied anything.
    async fn follow(&self) -> Result<bool, ConsentError> {
        let cursor = self
            .db
            .run(|conn| Ok::<_, ConsentError>(store::find_cursor(conn, FEED)?))
            .await?
            .unwrap_or_default();
        let token = self
            .tokens
            .token(PROFILES, &["profiles.read".to_owned()])
            .await
            .map_err(unavailable)?;
        let request = bearer_request(
            &token,
            pb::WatchChangesRequest {
                cursor,
                kinds: vec![
                    pb::ChangeKind::Merged.into(),
                    pb::ChangeKind::InteractionRecorded.into(),
                ],
            },
        )
        .map_err(unavailable)?;
        let mut stream = ProfilesClient::new(self.profiles.clone())
            .watch_changes(request)
            .await
            .map_err(unavailable)?
            .into_inner();
        let mut applied = false;
        while let Some(first) = stream.message().await.map_err(unavailable)? {
            // What has arrived already goes in the same transaction.
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match stream.message().now_or_never() {
                    Some(Ok(Some(next))) => batch.push(next),
                    _ => break,
                }
            }
            self.apply_batch(batch).await?;
            applied = true;
        }
        Ok(applied)
    }

    async fn apply_batch(&self, batch: Vec<pb::WatchChangesResponse>) -> Result<(), ConsentError> {
        let changes: Vec<pb::Change> = batch.into_iter().filter_map(|m| m.change).collect();
        let Some(last) = changes.last().map(|c| c.cursor.clone()) else {
            return Ok(());
        };
        let wanted = changes
            .iter()
            .map(feed_change)
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()?;
        let count = wanted.len();
        self.db
            .run(move |conn| {
                for change in &wanted {
                    apply(conn, change)?;
                }
                store::upsert_cursor(conn, FEED, &last)?;
                Ok::<_, ConsentError>(())
            })
            .await?;
        if count > 0 {
            tracing::debug!(changes = count, "profiles changes applied");
        }
        Ok(())
    }
}
