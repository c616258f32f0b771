//! Following the consent service's ledger (`WatchConsentChanges`) from another service, with
//! the cursor kept in the service's own `feed_cursors` table under `consent`: see
//! [`crate::feed_follower`].

use std::sync::Arc;

use diesel::PgConnection;
use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::DbError;
use crate::feed_follower::{FeedFollower, FeedSource};

/// What a service does with the consent decisions it follows.
pub trait DecisionSink: Send + Sync + 'static {
    type Error: From<DbError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static;

    /// The purposes whose decisions are wanted; empty for all.
    fn purposes(&self) -> Vec<String>;

    /// Applies `entries`, in ledger commit order, in the caller's transaction.
    fn apply(
        &self,
        conn: &mut PgConnection,
        entries: &[pb::LedgerEntry],
    ) -> Result<(), Self::Error>;

    /// Called once what `apply` wrote has committed: the place to wake readers of it.
    fn committed(&self) {}
}

/// The consent ledger, into a [`DecisionSink`].
pub struct ConsentDecisions<S>(Arc<S>);

impl<S: DecisionSink> FeedSource for ConsentDecisions<S> {
    type Message = pb::WatchConsentChangesResponse;
    type Error = S::Error;

    const FEED: &'static str = "consent";
    const AUDIENCE: &'static str = "consent";
    const SCOPE: &'static str = "consent.read";

    async fn open(
        &self,
        channel: Channel,
        token: &str,
        cursor: String,
    ) -> Result<Streaming<Self::Message>, tonic::Status> {
        let request = bearer_request(
            token,
            pb::WatchConsentChangesRequest {
                cursor,
                purpose_keys: self.0.purposes(),
            },
        )?;
        Ok(ConsentsClient::new(channel)
            .watch_consent_changes(request)
            .await?
            .into_inner())
    }

    fn cursor(message: &Self::Message) -> &str {
        &message.cursor
    }

    fn apply(
        &self,
        conn: &mut PgConnection,
        messages: Vec<Self::Message>,
    ) -> Result<(), Self::Error> {
        let entries: Vec<pb::LedgerEntry> = messages.into_iter().filter_map(|m| m.entry).collect();
        self.0.apply(conn, &entries)
    }

    fn committed(&self) {
        self.0.committed();
    }
}

/// Follows the consent ledger into a [`DecisionSink`].
pub type ConsentFollower<S> = FeedFollower<ConsentDecisions<S>>;

impl<S: DecisionSink> FeedFollower<ConsentDecisions<S>> {
    /// Reads the ledger at `consent` with `tokens` (scope `consent.read`), keeping the cursor
    /// in `db`.
    pub fn new(
        db: crate::Db,
        consent: Channel,
        tokens: Arc<dyn TokenSource>,
        sink: Arc<S>,
    ) -> Self {
        Self::with(db, consent, tokens, ConsentDecisions(sink))
    }
}
