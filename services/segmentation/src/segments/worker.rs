//! The background side of membership: sweeps of new segments (and of RFM segments after a
//! new computation), and the evaluations time has made due.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ecrm_platform::Db;
use tokio_util::sync::CancellationToken;

use super::maintain::Maintainer;
use crate::error::SegmentationError;

/// Customers evaluated a transaction.
const BATCH: i64 = 500;
/// How often to look for due evaluations when nothing wakes the worker.
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
                Ok(true) => {
                    maintainer.changed.notify_waiters();
                    continue;
                }
                Ok(false) => POLL,
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

/// One batch of sweeping, then one of due evaluations; whether either had work.
async fn step(db: &Db, maintainer: &Arc<Maintainer>) -> Result<bool, SegmentationError> {
    let swept = {
        let maintainer = maintainer.clone();
        db.run(move |conn| maintainer.sweep_step(conn, Utc::now(), BATCH))
            .await?
    };
    let due = {
        let maintainer = maintainer.clone();
        db.run(move |conn| maintainer.run_due(conn, Utc::now(), BATCH))
            .await?
    };
    Ok(swept || due > 0)
}
