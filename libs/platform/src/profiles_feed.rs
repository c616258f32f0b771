//! Following the profiles service's change feed from another service. The follower reads
//! `WatchChanges` from the cursor kept in the service's own `feed_cursors` table and applies
//! each batch of changes together with the new cursor in one transaction, so a restart of
//! either side resumes exactly where it stopped and every change takes effect once. It
//! reconnects with backoff when the stream breaks.
//!
//! The service's migrations create the table:
//! `CREATE TABLE feed_cursors (feed text PRIMARY KEY, cursor text NOT NULL,
//! updated_at timestamptz NOT NULL DEFAULT now())`.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Text;
use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::{Db, DbError};

/// The feed's name in `feed_cursors`.
const FEED: &str = "profiles";
/// The service called, as tokens name their audience.
const PROFILES: &str = "profiles";
/// Changes applied in one transaction at most.
const BATCH: usize = 500;
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a service does with the changes it follows.
pub trait ChangeSink: Send + Sync + 'static {
    type Error: From<DbError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static;

    /// The kinds of change wanted; empty for all.
    fn kinds(&self) -> Vec<pb::ChangeKind>;

    /// Applies `changes`, in feed order, in the caller's transaction.
    fn apply(&self, conn: &mut PgConnection, changes: &[pb::Change]) -> Result<(), Self::Error>;

    /// Called once what `apply` wrote has committed: the place to wake readers of it.
    fn committed(&self) {}
}

#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("profiles: {0}")]
    Profiles(tonic::Status),
    #[error("{0}")]
    Apply(String),
}

#[derive(QueryableByName)]
struct CursorRow {
    #[diesel(sql_type = Text)]
    cursor: String,
}

fn find_cursor(conn: &mut PgConnection) -> QueryResult<Option<String>> {
    diesel::sql_query("SELECT cursor FROM feed_cursors WHERE feed = $1")
        .bind::<Text, _>(FEED)
        .get_result::<CursorRow>(conn)
        .optional()
        .map(|row| row.map(|r| r.cursor))
}

fn upsert_cursor(conn: &mut PgConnection, cursor: &str) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO feed_cursors (feed, cursor) VALUES ($1, $2) \
         ON CONFLICT (feed) DO UPDATE SET cursor = excluded.cursor, updated_at = now()",
    )
    .bind::<Text, _>(FEED)
    .bind::<Text, _>(cursor)
    .execute(conn)
    .map(drop)
}

/// Follows the profiles change feed into a [`ChangeSink`].
pub struct ProfilesFollower<S> {
    db: Db,
    profiles: Channel,
    tokens: Arc<dyn TokenSource>,
    sink: Arc<S>,
}

impl<S> std::fmt::Debug for ProfilesFollower<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilesFollower").finish_non_exhaustive()
    }
}

impl<S: ChangeSink> ProfilesFollower<S> {
    /// Reads the feed at `profiles` with `tokens` (scope `profiles.read`), keeping the cursor
    /// in `db`.
    pub fn new(db: Db, profiles: Channel, tokens: Arc<dyn TokenSource>, sink: Arc<S>) -> Self {
        Self {
            db,
            profiles,
            tokens,
            sink,
        }
    }

    /// Follows the feed until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) {
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
    async fn follow(&self) -> Result<bool, FollowError> {
        let cursor = self
            .db
            .run(|conn| Ok::<_, DbError>(find_cursor(conn)?))
            .await
            .map_err(|error| FollowError::Apply(error.to_string()))?
            .unwrap_or_default();
        let token = self
            .tokens
            .token(PROFILES, &["profiles.read".to_owned()])
            .await
            .map_err(FollowError::Profiles)?;
        let request = bearer_request(
            &token,
            pb::WatchChangesRequest {
                cursor,
                kinds: self.sink.kinds().into_iter().map(Into::into).collect(),
            },
        )
        .map_err(FollowError::Profiles)?;
        let mut stream = ProfilesClient::new(self.profiles.clone())
            .watch_changes(request)
            .await
            .map_err(FollowError::Profiles)?
            .into_inner();
        let mut applied = false;
        while let Some(first) = stream.message().await.map_err(FollowError::Profiles)? {
            // What has arrived already goes in the same transaction.
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match stream.message().now_or_never() {
                    Some(Ok(Some(next))) => batch.push(next),
                    _ => break,
                }
            }
            self.apply(batch).await?;
            applied = true;
        }
        Ok(applied)
    }

    async fn apply(&self, batch: Vec<pb::WatchChangesResponse>) -> Result<(), FollowError> {
        let changes: Vec<pb::Change> = batch.into_iter().filter_map(|m| m.change).collect();
        let Some(last) = changes.last().map(|c| c.cursor.clone()) else {
            return Ok(());
        };
        let sink = self.sink.clone();
        self.db
            .run(move |conn| {
                sink.apply(conn, &changes)?;
                upsert_cursor(conn, &last)?;
                Ok::<_, S::Error>(())
            })
            .await
            .map_err(|error| FollowError::Apply(error.to_string()))?;
        self.sink.committed();
        Ok(())
    }
}
