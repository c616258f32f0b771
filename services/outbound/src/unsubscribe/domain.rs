//! Unsubscribing: kept here first, so the click blocks sends at once, then forwarded to
//! consent's ledger, now or, while consent is unreachable, by a background forwarder.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ecrm_platform::Db;
use ecrm_proto::ecrm::consent::v1 as pb;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::config::ForwardRetry;
use super::store::{self, UnsubscribeRow};
use crate::consent_client::{ConsentClient, WithdrawError};
use crate::error::OutboundError;
use crate::templates::domain::Channel;

/// Longest user agent kept as evidence.
const MAX_USER_AGENT_CHARS: usize = 256;
/// How long an unsubscribe being forwarded is its forwarder's: well beyond a call's timeout.
const LEASE_SECONDS: f64 = 60.0;
/// Unsubscribes claimed per round.
const CLAIM: i64 = 50;

/// How a click was made: enough to prove it without keeping who made it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// SHA-256 (lower-case hex) of the requester's IP address.
    pub ip_hash: Option<String>,
    pub user_agent: Option<String>,
}

impl Evidence {
    /// The evidence of a request from `ip` with the `User-Agent` `user_agent`: the address only
    /// hashed, the agent without control characters and cut to 256 characters.
    pub fn new(ip: IpAddr, user_agent: Option<&str>) -> Self {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            ip.to_canonical().to_string().as_bytes(),
        );
        let user_agent = user_agent
            .map(|agent| {
                agent
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>()
                    .trim()
                    .chars()
                    .take(MAX_USER_AGENT_CHARS)
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .filter(|agent| !agent.is_empty());
        Self {
            ip_hash: Some(hex::encode(digest.as_ref())),
            user_agent,
        }
    }
}

pub struct Unsubscribes {
    db: Db,
    consent: Option<ConsentClient>,
    retry: ForwardRetry,
}

impl std::fmt::Debug for Unsubscribes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsubscribes").finish_non_exhaustive()
    }
}

impl Unsubscribes {
    /// Unsubscribes kept in `db` and forwarded to `consent`; with no consent, they wait (and
    /// keep blocking sends) until a process with one forwards them.
    pub fn new(db: Db, consent: Option<ConsentClient>, retry: ForwardRetry) -> Self {
        Self { db, consent, retry }
    }

    /// Unsubscribes `subject` from `purpose` on `channel`: committed here first, then recorded
    /// at consent. Succeeds once committed here, whatever consent answered: a withdrawal it
    /// could not take yet is forwarded later. Unsubscribing again while a withdrawal of the
    /// same waits adds nothing.
    #[tracing::instrument(skip_all, fields(subject.id = %subject, purpose = %purpose))]
    pub async fn unsubscribe(
        &self,
        subject: Uuid,
        channel: Channel,
        purpose: &str,
        evidence: Evidence,
    ) -> Result<(), OutboundError> {
        let now = Utc::now();
        let row = UnsubscribeRow {
            unsubscribe_id: Uuid::now_v7(),
            subject_id: subject,
            channel: channel.as_str().to_owned(),
            purpose_key: purpose.to_owned(),
            requested_at: now,
            ip_hash: evidence.ip_hash,
            user_agent: evidence.user_agent,
            forwarded_at: None,
            refused_at: None,
            attempts: 0,
            last_error: None,
            // Leased to this request, which forwards it right away.
            next_attempt_at: now
                + chrono::Duration::from_std(Duration::from_secs_f64(LEASE_SECONDS))
                    .unwrap_or_default(),
        };
        let inserted = {
            let row = row.clone();
            self.db
                .run(move |conn| Ok::<_, OutboundError>(store::insert(conn, &row)?))
                .await?
        };
        if !inserted {
            tracing::info!("unsubscribe already waiting to be forwarded");
            return Ok(());
        }
        tracing::info!(unsubscribe.id = %row.unsubscribe_id, "unsubscribed");
        if self.consent.is_some() {
            if let Err(error) = self.forward(row).await {
                tracing::warn!(error = %error, "cannot record the outcome of forwarding an unsubscribe");
            }
        } else {
            tracing::warn!("no --consent-url: the unsubscribe waits to be forwarded");
        }
        Ok(())
    }

    /// Forwards the unsubscribes due now; returns how many were tried.
    pub async fn forward_due(&self) -> Result<usize, OutboundError> {
        let claimed = self
            .db
            .run(|conn| Ok::<_, OutboundError>(store::claim_due(conn, CLAIM, LEASE_SECONDS)?))
            .await?;
        let tried = claimed.len();
        for row in claimed {
            let id = row.unsubscribe_id;
            if let Err(error) = self.forward(row).await {
                tracing::warn!(unsubscribe.id = %id, error = %error, "cannot record the outcome of forwarding an unsubscribe");
            }
        }
        Ok(tried)
    }

    /// Records `row` at consent, and what came of it here.
    async fn forward(&self, row: UnsubscribeRow) -> Result<(), OutboundError> {
        let Some(consent) = &self.consent else {
            return Ok(());
        };
        let channel = Channel::parse(&row.channel).ok_or(OutboundError::Corrupt)?;
        let evidence = pb::Evidence {
            ip_hash: row.ip_hash.clone().unwrap_or_default(),
            user_agent: row.user_agent.clone().unwrap_or_default(),
            // Ties the ledger entry to the click kept here.
            form_id: format!("outbound.unsubscribes:{}", row.unsubscribe_id),
        };
        let id = row.unsubscribe_id;
        let outcome = consent
            .withdraw(row.subject_id, &row.purpose_key, channel, evidence)
            .await;
        match outcome {
            Ok(()) => {
                tracing::info!(unsubscribe.id = %id, subject.id = %row.subject_id, "unsubscribe recorded at consent");
                self.db
                    .run(move |conn| Ok::<_, OutboundError>(store::update_forwarded(conn, id)?))
                    .await
            }
            Err(WithdrawError::Refused(status)) => {
                // Asking again cannot help; the row keeps blocking sends for the purpose.
                tracing::error!(unsubscribe.id = %id, subject.id = %row.subject_id, purpose = %row.purpose_key, code = ?status.code(), reason = %status.message(), "consent refused an unsubscribe; it keeps blocking sends, an operator must settle it");
                let error = format!("refused: {:?}: {}", status.code(), status.message());
                self.db
                    .run(move |conn| {
                        Ok::<_, OutboundError>(store::update_refused(conn, id, &error)?)
                    })
                    .await
            }
            Err(WithdrawError::Unavailable(unavailable)) => {
                let attempts = row.attempts + 1;
                let next = Utc::now()
                    + chrono::Duration::from_std(self.retry.backoff(attempts)).unwrap_or_default();
                tracing::warn!(unsubscribe.id = %id, attempts, code = ?unavailable.status.code(), "cannot forward an unsubscribe to consent; will retry");
                let error = format!(
                    "{:?}: {}",
                    unavailable.status.code(),
                    unavailable.status.message()
                );
                self.db
                    .run(move |conn| {
                        Ok::<_, OutboundError>(store::update_failed(conn, id, &error, next)?)
                    })
                    .await
            }
        }
    }

    /// Forwards waiting unsubscribes in the background until `shutdown`: those consent could
    /// not take at once, after a backoff, and those a stopped process left.
    pub fn spawn_forwarder(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(async move {
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                match self.forward_due().await {
                    // There may be more due.
                    Ok(tried) if tried > 0 => continue,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot claim unsubscribes to forward");
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.retry.poll) => {}
                }
            }
        });
    }
}
