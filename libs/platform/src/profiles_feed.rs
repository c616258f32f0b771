//! Following the profiles service's change feed (`WatchChanges`) from another service, with
//! the cursor kept in the service's own `feed_cursors` table under `profiles`: see
//! [`crate::feed_follower`].

use std::sync::Arc;

use diesel::PgConnection;
use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::DbError;
use crate::feed_follower::{FeedFollower, FeedSource};

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

/// The name the profiles feed's cursor and apply lock go by in a follower's schema.
pub const FEED: &str = "profiles";

/// The profiles change feed, into a [`ChangeSink`].
pub struct ProfilesChanges<S>(Arc<S>);

impl<S: ChangeSink> FeedSource for ProfilesChanges<S> {
    type Message = pb::WatchChangesResponse;
    type Error = S::Error;

    const FEED: &'static str = FEED;
    const AUDIENCE: &'static str = "profiles";
    const SCOPE: &'static str = "profiles.read";

    async fn open(
        &self,
        channel: Channel,
        token: &str,
        cursor: String,
    ) -> Result<Streaming<Self::Message>, tonic::Status> {
        let request = bearer_request(
            token,
            pb::WatchChangesRequest {
                cursor,
                kinds: self.0.kinds().into_iter().map(Into::into).collect(),
            },
        )?;
        Ok(ProfilesClient::new(channel)
            .watch_changes(request)
            .await?
            .into_inner())
    }

    fn cursor(message: &Self::Message) -> &str {
        message.change.as_ref().map_or("", |c| c.cursor.as_str())
    }

    fn apply(
        &self,
        conn: &mut PgConnection,
        messages: Vec<Self::Message>,
    ) -> Result<(), Self::Error> {
        let changes: Vec<pb::Change> = messages.into_iter().filter_map(|m| m.change).collect();
        self.0.apply(conn, &changes)
    }

    fn committed(&self) {
        self.0.committed();
    }
}

/// Follows the profiles change feed into a [`ChangeSink`].
pub type ProfilesFollower<S> = FeedFollower<ProfilesChanges<S>>;

impl<S: ChangeSink> FeedFollower<ProfilesChanges<S>> {
    /// Reads the feed at `profiles` with `tokens` (scope `profiles.read`), keeping the cursor
    /// in `db`.
    pub fn new(
        db: crate::Db,
        profiles: Channel,
        tokens: Arc<dyn TokenSource>,
        sink: Arc<S>,
    ) -> Self {
        Self::with(db, profiles, tokens, ProfilesChanges(sink))
    }
}
