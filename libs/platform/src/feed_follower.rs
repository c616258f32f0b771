//! Following another service's feed (a server stream with a resumable cursor) into this
//! service's database. The follower reads from the cursor kept in the service's own
//! `feed_cursors` table and applies each batch of messages together with the new cursor in
//! one transaction, so a restart of either side resumes exactly where it stopped and every
//! message takes effect once. It reconnects with backoff when the stream breaks.
//!
//! Replicas of a service each run a follower on the same table. A batch is applied only if the
//! stored cursor is still the one its stream started from (checked under an advisory lock on
//! the feed), so each message takes effect once however many replicas follow: a replica that
//! finds the cursor moved drops its batch and backs off, and in practice one replica follows
//! while the others wait to take over when it stops.
//!
//! The service's migrations create the table:
//! `CREATE TABLE feed_cursors (feed text PRIMARY KEY, cursor text NOT NULL,
//! updated_at timestamptz NOT NULL DEFAULT now())`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ecrm_auth::TokenSource;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::{Db, DbError};

/// Messages applied in one transaction at most.
const BATCH: usize = 500;
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A feed of another service, and what this service does with its messages.
pub trait FeedSource: Send + Sync + 'static {
    /// One message of the stream.
    type Message: Send + 'static;
    type Error: From<DbError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static;

    /// The feed's name in `feed_cursors`.
    const FEED: &'static str;
    /// The service read, as tokens name their audience.
    const AUDIENCE: &'static str;
    /// The scope the stream needs.
    const SCOPE: &'static str;

    /// Opens the stream after `cursor` (empty for the start) on `channel`, with `token`.
    fn open(
        &self,
        channel: Channel,
        token: &str,
        cursor: String,
    ) -> impl Future<Output = Result<Streaming<Self::Message>, tonic::Status>> + Send;

    /// The cursor to resume after `message`.
    fn cursor(message: &Self::Message) -> &str;

    /// Applies `messages`, in feed order, in the caller's transaction.
    fn apply(
        &self,
        conn: &mut PgConnection,
        messages: Vec<Self::Message>,
    ) -> Result<(), Self::Error>;

    /// Called once what `apply` wrote has committed: the place to wake readers of it.
    fn committed(&self) {}
}

#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("{0}: {1}")]
    Remote(&'static str, tonic::Status),
    #[error("{0}")]
    Apply(String),
    /// Another replica applied the feed past where this stream started.
    #[error("another replica moved the cursor")]
    Superseded,
}

#[derive(QueryableByName)]
struct CursorRow {
    #[diesel(sql_type = Text)]
    cursor: String,
}

fn find_cursor(conn: &mut PgConnection, feed: &str) -> QueryResult<Option<String>> {
    diesel::sql_query("SELECT cursor FROM feed_cursors WHERE feed = $1")
        .bind::<Text, _>(feed)
        .get_result::<CursorRow>(conn)
        .optional()
        .map(|row| row.map(|r| r.cursor))
}

fn upsert_cursor(conn: &mut PgConnection, feed: &str, cursor: &str) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO feed_cursors (feed, cursor) VALUES ($1, $2) \
         ON CONFLICT (feed) DO UPDATE SET cursor = excluded.cursor, updated_at = now()",
    )
    .bind::<Text, _>(feed)
    .bind::<Text, _>(cursor)
    .execute(conn)
    .map(drop)
}

/// Follows a [`FeedSource`]'s stream into this service's database.
pub struct FeedFollower<F> {
    db: Db,
    channel: Channel,
    tokens: Arc<dyn TokenSource>,
    source: Arc<F>,
}

impl<F> std::fmt::Debug for FeedFollower<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedFollower").finish_non_exhaustive()
    }
}

impl<F: FeedSource> FeedFollower<F> {
    /// Reads the feed on `channel` with `tokens`, keeping the cursor in `db`.
    pub fn with(db: Db, channel: Channel, tokens: Arc<dyn TokenSource>, source: F) -> Self {
        Self {
            db,
            channel,
            tokens,
            source: Arc::new(source),
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
                    // Some messages were applied: the connection was good.
                    Ok(true) => backoff = MIN_BACKOFF,
                    Ok(false) => {}
                    Err(FollowError::Superseded) => {
                        tracing::debug!(
                            feed = F::FEED,
                            "another replica follows the feed; will retry"
                        );
                    }
                    Err(error) => {
                        tracing::warn!(feed = F::FEED, error = %error, "cannot follow the feed; will retry");
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
        let mut stored = self
            .db
            .run(|conn| Ok::<_, DbError>(find_cursor(conn, F::FEED)?))
            .await
            .map_err(|error| FollowError::Apply(error.to_string()))?;
        let cursor = stored.clone().unwrap_or_default();
        let remote = |status| FollowError::Remote(F::AUDIENCE, status);
        let token = self
            .tokens
            .token(F::AUDIENCE, &[F::SCOPE.to_owned()])
            .await
            .map_err(remote)?;
        let mut stream = self
            .source
            .open(self.channel.clone(), &token, cursor)
            .await
            .map_err(remote)?;
        let mut applied = false;
        while let Some(first) = stream.message().await.map_err(remote)? {
            // What has arrived already goes in the same transaction.
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match stream.message().now_or_never() {
                    Some(Ok(Some(next))) => batch.push(next),
                    _ => break,
                }
            }
            self.apply(batch, &mut stored).await?;
            applied = true;
        }
        Ok(applied)
    }

    /// Applies `batch` and advances the cursor to its last message, if the stored cursor is
    /// still `stored`; `stored` is then that last message's.
    async fn apply(
        &self,
        batch: Vec<F::Message>,
        stored: &mut Option<String>,
    ) -> Result<(), FollowError> {
        let Some(last) = batch.last().map(|m| F::cursor(m).to_owned()) else {
            return Ok(());
        };
        let source = self.source.clone();
        let expected = stored.clone();
        let schema = self.db.schema().to_owned();
        let cursor = last.clone();
        let applied = self
            .db
            .run(move |conn| {
                lock_applying(conn, &schema, F::FEED)?;
                if find_cursor(conn, F::FEED)? != expected {
                    return Ok(false);
                }
                source.apply(conn, batch)?;
                upsert_cursor(conn, F::FEED, &cursor)?;
                Ok::<_, F::Error>(true)
            })
            .await
            .map_err(|error| FollowError::Apply(error.to_string()))?;
        if !applied {
            return Err(FollowError::Superseded);
        }
        *stored = Some(last);
        self.source.committed();
        Ok(())
    }
}

/// Takes, until the end of the caller's transaction, the lock under which a follower of `feed`
/// applies each batch to `schema`: one batch at a time across replicas, and whatever else must
/// not interleave with a batch (an erasure that a batch read before it must not undo) waits for
/// the batch in progress and holds off the next.
pub fn lock_applying(conn: &mut PgConnection, schema: &str, feed: &str) -> QueryResult<()> {
    // Per schema: services sharing a database each follow the feed into their own table.
    let key = crate::db::lock_key("feed", &format!("{schema}.{feed}"));
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(key)
        .execute(conn)
        .map(drop)
}
