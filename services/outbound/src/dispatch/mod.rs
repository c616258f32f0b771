//! The queue's workers: claim due messages, pass them through the gate, hand the cleared ones
//! to their channel, and write down what became of each, one message at a time as it ends, so
//! that a worker stopping at any moment leaves at most the message in its hands to be sent
//! again (with the same id, which providers can drop as a repeat).

pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ecrm_platform::Db;
use futures::StreamExt;
use futures::future::Either;
use ring::rand::{SecureRandom, SystemRandom};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::store::Outcome;
use crate::delivery::{Channels, Outcome as Delivery};
use crate::error::OutboundError;
use crate::gate::{Cleared, Gate, Verdict};
use crate::messages::domain::{Reason, Status};
use crate::messages::store::MessageRow;
use crate::suppressions::domain::{Reason as SuppressionReason, Scope, Suppressions};
use crate::templates::domain::Channel;

/// How the workers work.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Workers in this process; each claims its own batches.
    pub workers: usize,
    /// Messages a worker claims at once.
    pub batch: i64,
    /// Messages of a batch in the hands of their channels at once.
    pub concurrency: usize,
    /// How long a claim lasts: a worker that stops answering lets its messages go after it.
    pub claim: Duration,
    /// Attempts reaching the provider before a message fails.
    pub max_attempts: i32,
    /// The first retry's delay; each next one doubles, up to an hour, with jitter.
    pub retry_base: Duration,
    /// How long a channel pauses when its provider asks to slow down without saying.
    pub rate_limit_pause: Duration,
    /// How long an idle worker waits before looking again.
    pub idle: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            batch: 200,
            concurrency: 16,
            claim: Duration::from_secs(120),
            max_attempts: 5,
            retry_base: Duration::from_secs(30),
            rate_limit_pause: Duration::from_secs(60),
            idle: Duration::from_millis(500),
        }
    }
}

pub struct Dispatcher {
    db: Db,
    gate: Arc<Gate>,
    channels: Arc<Channels>,
    suppressions: Arc<Suppressions>,
    settings: DispatchSettings,
    random: SystemRandom,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

/// The delay before retry number `attempt` (1 for the first): doubling from `base`, at most an
/// hour, then somewhere in its upper half, so retries of many messages spread out.
pub fn backoff(base: Duration, attempt: u32, random: u32) -> Duration {
    let full = base
        .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)))
        .min(Duration::from_secs(3_600));
    let half = full / 2;
    half + half.mul_f64(f64::from(random) / f64::from(u32::MAX))
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl Dispatcher {
    pub fn new(
        db: Db,
        gate: Arc<Gate>,
        channels: Arc<Channels>,
        suppressions: Arc<Suppressions>,
        settings: DispatchSettings,
    ) -> Self {
        Self {
            db,
            gate,
            channels,
            suppressions,
            settings,
            random: SystemRandom::new(),
        }
    }

    /// Runs the workers until `shutdown`; each finishes the messages in its hands first and
    /// gives back the rest of its batch.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) {
        for _ in 0..self.settings.workers.max(1) {
            let dispatcher = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { dispatcher.work(shutdown).await });
        }
    }

    async fn work(&self, shutdown: CancellationToken) {
        let worker = Uuid::now_v7();
        // Claims a failed round left: given back before the next round, so that its messages
        // (none of them sent: a round fails before sending) do not wait for their claims to
        // lapse once the database answers again.
        let mut left_claims = false;
        while !shutdown.is_cancelled() {
            if left_claims {
                left_claims = self.release(worker).await.is_err();
            }
            let idle = if left_claims {
                true
            } else {
                match self.round(worker, &shutdown).await {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(error) => {
                        tracing::warn!(%error, "outbound worker round failed");
                        left_claims = true;
                        true
                    }
                }
            };
            if idle {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(self.settings.idle) => {}
                }
            }
        }
        if let Err(error) = self.release(worker).await {
            tracing::warn!(%error, "could not give back a stopping worker's messages");
        }
    }

    /// Gives back every message `worker` holds.
    async fn release(&self, worker: Uuid) -> Result<usize, OutboundError> {
        self.db
            .run(move |conn| Ok::<_, OutboundError>(store::release(conn, worker)?))
            .await
    }

    /// One batch: claimed, cleared, sent, written down. Returns how many were claimed.
    pub async fn round(
        &self,
        worker: Uuid,
        shutdown: &CancellationToken,
    ) -> Result<usize, OutboundError> {
        let now = Utc::now();
        let until = now + to_chrono(self.settings.claim);
        let limit = self.settings.batch;
        let batch = self
            .db
            .run(move |conn| Ok::<_, OutboundError>(store::claim(conn, worker, now, until, limit)?))
            .await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let claimed = batch.len();
        self.holding_claims(worker, self.settle(worker, batch, now, shutdown))
            .await?;
        Ok(claimed)
    }

    /// Runs `work`, extending `worker`'s claims every third of a claim meanwhile: a batch
    /// slower than one claim (a slow provider, a long batch) is not taken over and sent a second
    /// time by another worker, while the claims of a worker that died lapse.
    async fn holding_claims<T>(&self, worker: Uuid, work: impl Future<Output = T>) -> T {
        let period = (self.settings.claim / 3).max(Duration::from_millis(100));
        let heartbeat = async {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let until = Utc::now() + to_chrono(self.settings.claim);
                let extended = self
                    .db
                    .run(move |conn| Ok::<_, OutboundError>(store::extend(conn, worker, until)?))
                    .await;
                if let Err(error) = extended {
                    tracing::warn!(%error, "could not extend a worker's claims");
                }
            }
        };
        match futures::future::select(std::pin::pin!(work), std::pin::pin!(heartbeat)).await {
            Either::Left((output, _)) => output,
            Either::Right(((), work)) => work.await,
        }
    }

    /// Writes down a message's outcome, trying again while the database does not answer (a
    /// restart, a failover) for as long as the claim would last: a message the provider took
    /// and that is not written down as sent goes out a second time once its claim lapses.
    async fn write_down(
        &self,
        worker: Uuid,
        id: Uuid,
        outcome: store::Outcome,
    ) -> Result<(), OutboundError> {
        let deadline = tokio::time::Instant::now() + self.settings.claim;
        let mut delay = Duration::from_millis(100);
        loop {
            let attempt = outcome.clone();
            let finished = self
                .db
                .run(move |conn| {
                    Ok::<_, OutboundError>(store::finish(conn, worker, id, &attempt, Utc::now())?)
                })
                .await;
            match finished {
                Ok(_) => return Ok(()),
                Err(error) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::warn!(%error, message_id = %id, ?delay, "cannot write down a message's outcome yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// A claimed batch: cleared, sent, written down.
    async fn settle(
        &self,
        worker: Uuid,
        batch: Vec<MessageRow>,
        now: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Result<(), OutboundError> {
        let timer = std::time::Instant::now();
        let verdicts = self.gate.clear(worker, &batch, now).await?;
        let gated_in = timer.elapsed();
        let mut refused = Vec::new();
        let mut cleared = Vec::new();
        for (message, verdict) in batch.iter().zip(verdicts) {
            match verdict {
                Verdict::Cleared {
                    message: ready,
                    locale,
                    version,
                } => cleared.push((*ready, locale, version)),
                Verdict::Blocked { reason, detail } => refused.push((
                    message.message_id,
                    Outcome::new(Status::Blocked, Some(reason), detail),
                )),
                Verdict::Failed { reason, detail } => refused.push((
                    message.message_id,
                    Outcome::new(Status::Failed, Some(reason), detail),
                )),
                Verdict::Deferred {
                    reason,
                    detail,
                    until,
                } => refused.push((
                    message.message_id,
                    Outcome {
                        due_at: Some(until),
                        ..Outcome::new(Status::Deferred, Some(reason), detail)
                    },
                )),
                Verdict::Released => {}
            }
        }
        let attempts: HashMap<Uuid, i32> =
            batch.iter().map(|m| (m.message_id, m.attempts)).collect();
        self.db
            .run(move |conn| {
                for (id, outcome) in &refused {
                    store::finish(conn, worker, *id, outcome, now)?;
                }
                Ok::<_, OutboundError>(())
            })
            .await?;

        // Channels a provider paused during this batch, until when.
        let paused: Mutex<HashMap<Channel, DateTime<Utc>>> = Mutex::new(HashMap::new());
        let paused = &paused;
        let attempts = &attempts;
        futures::stream::iter(cleared)
            .map(|(message, locale, version)| async move {
                let outcome = if shutdown.is_cancelled() {
                    // Stopping: back in the queue as it was, for the next worker.
                    Outcome {
                        due_at: Some(Utc::now()),
                        ..Outcome::new(Status::Queued, None, "")
                    }
                } else if let Some(until) = paused
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&message.channel()).copied())
                {
                    Outcome {
                        due_at: Some(until),
                        ..Outcome::new(Status::Deferred, Some(Reason::RateLimited), "the channel is paused")
                    }
                } else {
                    let previous = attempts.get(&message.message_id()).copied().unwrap_or(0);
                    let delivery = self.channels.deliver(&message).await;
                    self.outcome(&message, delivery, previous, (locale, version), paused)
                        .await
                };
                let id = message.message_id();
                if let Err(error) = self.write_down(worker, id, outcome).await {
                    tracing::error!(%error, message_id = %id, "could not write down a message's outcome");
                }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
        tracing::debug!(
            claimed = batch.len(),
            gate_ms = gated_in.as_millis(),
            round_ms = timer.elapsed().as_millis(),
            "outbound worker round"
        );
        Ok(())
    }

    /// What a delivery means for the message, and for its channel and address.
    async fn outcome(
        &self,
        message: &Cleared,
        delivery: Delivery,
        previous_attempts: i32,
        rendered: (String, i32),
        paused: &Mutex<HashMap<Channel, DateTime<Utc>>>,
    ) -> Outcome {
        let now = Utc::now();
        match delivery {
            Delivery::Delivered { provider_id } => Outcome {
                attempted: 1,
                sent_at: Some(now),
                provider_id,
                rendered: Some(rendered),
                ..Outcome::new(Status::Sent, None, "")
            },
            Delivery::Transient { detail } => {
                let attempt = previous_attempts + 1;
                if attempt >= self.settings.max_attempts {
                    return Outcome {
                        attempted: 1,
                        ..Outcome::new(Status::Failed, Some(Reason::AttemptsExhausted), detail)
                    };
                }
                let mut bytes = [0_u8; 4];
                let random = self
                    .random
                    .fill(&mut bytes)
                    .map_or(u32::MAX / 2, |()| u32::from_le_bytes(bytes));
                let delay = backoff(
                    self.settings.retry_base,
                    u32::try_from(attempt).unwrap_or(1),
                    random,
                );
                Outcome {
                    attempted: 1,
                    due_at: Some(now + to_chrono(delay)),
                    ..Outcome::new(Status::Deferred, Some(Reason::TransientFailure), detail)
                }
            }
            Delivery::RateLimited {
                retry_after,
                detail,
            } => {
                let until = now + to_chrono(retry_after.unwrap_or(self.settings.rate_limit_pause));
                if let Ok(mut paused) = paused.lock() {
                    paused.insert(message.channel(), until);
                }
                let channel = message.channel().as_str();
                let note = detail.clone();
                if let Err(error) = self
                    .db
                    .run(move |conn| {
                        Ok::<_, OutboundError>(store::pause_channel(conn, channel, until, &note)?)
                    })
                    .await
                {
                    tracing::warn!(%error, channel, "could not pause the channel");
                }
                // Not an attempt: the provider did not look at the message.
                Outcome {
                    due_at: Some(until),
                    ..Outcome::new(Status::Deferred, Some(Reason::RateLimited), detail)
                }
            }
            Delivery::Permanent { detail, suppress } => {
                if suppress && matches!(message.channel(), Channel::Email | Channel::Sms) {
                    let added = self
                        .suppressions
                        .add(
                            "outbound".to_owned(),
                            message.channel(),
                            message.address(),
                            Scope::All,
                            SuppressionReason::Bounced,
                            detail.chars().take(500).collect(),
                        )
                        .await;
                    if let Err(error) = added {
                        tracing::warn!(%error, "could not suppress a bounced address");
                    }
                }
                Outcome {
                    attempted: 1,
                    ..Outcome::new(Status::Failed, Some(Reason::PermanentFailure), detail)
                }
            }
            Delivery::NotConfigured => Outcome::new(
                Status::Failed,
                Some(Reason::ChannelNotConfigured),
                "the channel is not configured",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_upper_half_and_stops_at_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1, 0), Duration::from_secs(15));
        assert_eq!(backoff(base, 1, u32::MAX), Duration::from_secs(30));
        assert_eq!(backoff(base, 3, 0), Duration::from_secs(60));
        assert_eq!(backoff(base, 3, u32::MAX), Duration::from_secs(120));
        assert_eq!(backoff(base, 40, u32::MAX), Duration::from_secs(3_600));
        let some = backoff(base, 2, u32::MAX / 2);
        assert!(some > Duration::from_secs(30) && some < Duration::from_secs(60));
    }
}
