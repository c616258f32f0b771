//! Waiting for a quiet suite: background work one side of a comparison leaves behind (the
//! followers of the profiles feed projecting what it wrote) would otherwise weigh on the
//! next side measured.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use ecrm_platform::DatabaseUrl;
use ecrm_platform::feed::FeedCursor;

/// The services that follow the profiles feed, by schema, with the kinds of change each asks
/// for (a follower's cursor is that of the last change it was given).
const FOLLOWERS: [(&str, &[&str]); 2] = [
    ("consent", &["merged", "interaction_recorded"]),
    ("segmentation", &[]),
];
/// How long the followers may take to catch up before the run fails.
const AT_MOST: Duration = Duration::from_secs(600);

#[derive(QueryableByName)]
struct Head {
    #[diesel(sql_type = BigInt)]
    tx: i64,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Text)]
    cursor: String,
}

/// Waits until every follower of the profiles feed has applied its last change; returns how
/// long that took.
pub async fn feed_followed(url: &DatabaseUrl) -> anyhow::Result<Duration> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Duration> {
        let mut conn = PgConnection::establish(url.expose())?;
        let started = Instant::now();
        loop {
            if caught_up(&mut conn)? {
                return Ok(started.elapsed());
            }
            ensure!(
                started.elapsed() < AT_MOST,
                "the followers of the profiles feed have not caught up after {AT_MOST:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await?
}

fn caught_up(conn: &mut PgConnection) -> anyhow::Result<bool> {
    for (schema, kinds) in FOLLOWERS {
        // The last change of the kinds it follows (all when none are named).
        let head: Option<Head> = diesel::sql_query(
            "SELECT tx::text::bigint AS tx, seq FROM profiles.changes \
             WHERE cardinality($1::text[]) = 0 OR kind = ANY($1) \
             ORDER BY changes.tx DESC, changes.seq DESC LIMIT 1",
        )
        .bind::<Array<Text>, _>(kinds)
        .get_result(conn)
        .optional()?;
        let Some(head) = head else {
            continue;
        };
        let stored: Option<Stored> = diesel::sql_query(format!(
            "SELECT cursor FROM {schema}.feed_cursors WHERE feed = 'profiles'"
        ))
        .get_result(conn)
        .optional()?;
        let Some(stored) = stored else {
            return Ok(false);
        };
        let cursor = FeedCursor::decode(&stored.cursor)
            .with_context(|| format!("{schema} keeps a cursor that is not one"))?;
        if cursor
            < (FeedCursor {
                tx: head.tx,
                seq: head.seq,
            })
        {
            return Ok(false);
        }
    }
    Ok(true)
}
