//! The background side of membership: sweeps of new segments (and of RFM segments after a
//! new computation), the evaluations time has made due, and pruning joins and leaves older
//! than the history kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use ecrm_platform::Db;
use tokio_util::sync::CancellationToken;

use super::maintain::Maintainer;
use super::members;
use crate::error::SegmentationError;

/// Customers evaluated a transaction.
const BATCH: i64 = 500;
/// How often to look for work when nothing wakes the worker (another replica's sweep or
/// schedule); sooner when an evaluation is due sooner.
const POLL: Duration = Duration::from_secs(5);
/// How long to wait after a failure before trying again.
const BACKOFF: Duration = Duration::from_secs(2);
/// How often joins and leaves past the history kept are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs sweeps and due evaluations until `shutdown`.
pub fn spawn(db: Db, maintainer: Arc<Maintainer>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut pruned_at: Option<Instant> = None;
        loop {
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(Instant::now());
                let before = Utc::now() - TimeDelta::days(members::HISTORY_DAYS);
                match db
                    .run(move |conn| {
                        Ok::<_, SegmentationError>(members::prune_events(conn, before)?)
                    })
                    .await
                {
                    Ok(0) => {}
                    Ok(pruned) => {
                        tracing::info!(pruned, "pruned joins and leaves past the history kept")
                    }
                    Err(error) => tracing::warn!(error = %error, "cannot prune joins and leaves"),
                }
            }
            let wake = maintainer.sweep.clone();
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pause = match step(&db, &maintainer).await {
                Ok(Idle::Busy) => {
                    maintainer.changed.notify_waiters();
                    continue;
                }
                Ok(Idle::Until(next)) => next
                    .and_then(|at| (at - Utc::now()).to_std().ok())
                    .map_or(POLL, |wait| wait.min(POLL)),
                Err(error) => {
                    tracing::warn!(error = %error, "membership upkeep failed; trying again");
                    BACKOFF
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = &mut notified => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    });
}

/// Whether the upkeep has more to do at once, or when it is next due.
enum Idle {
    Busy,
    Until(Option<DateTime<Utc>>),
}

/// One batch of sweeping, then one of due evaluations.
async fn step(db: &Db, maintainer: &Arc<Maintainer>) -> Result<Idle, SegmentationError> {
    let maintainer = maintainer.clone();
    db.run(move |conn| {
        let now = Utc::now();
        let swept = maintainer.sweep_step(conn, now, BATCH)?;
        let due = maintainer.run_due(conn, now, BATCH)?;
        if swept || due > 0 {
            Ok(Idle::Busy)
        } else {
            Ok(Idle::Until(members::next_due(conn)?))
        }
    })
    .await
}
