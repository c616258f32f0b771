//! The background side of membership: sweeps of new segments (and of RFM segments after a
//! new computation), and the evaluations time has made due.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
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

/// Runs sweeps and due evaluations until `shutdown`.
pub fn spawn(db: Db, maintainer: Arc<Maintainer>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
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
