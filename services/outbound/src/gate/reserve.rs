//! The gate's last step: the frequency cap, checked and counted under a lock per subject, so
//! two workers clearing marketing messages for one subject at once cannot both pass it; and
//! the mark that hands a message to its channel, given only while its campaign runs.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use ecrm_platform::Db;
use uuid::Uuid;

use super::Verdict;
use crate::campaigns::domain::State;
use crate::error::OutboundError;
use crate::messages::domain::Status;
use crate::messages::store::MessageRow;
use crate::schema::outbound::{campaigns, messages};

/// What became of the candidates.
#[derive(Debug, Default)]
pub struct Reserved {
    /// Marketing messages over the cap.
    pub over: HashSet<Uuid>,
    /// Messages marked sending: the only ones to hand to their channel. The others are no
    /// longer this worker's: their campaign was paused or cancelled since they were claimed
    /// (given back, to wait for a resume), or their claim lapsed and another worker took them.
    pub sending: HashSet<Uuid>,
}

/// Marks the candidates sending (those `worker` still holds, whose campaign, if any, still
/// runs), except marketing ones over the cap.
pub async fn reserve(
    db: &Db,
    worker: Uuid,
    batch: &[MessageRow],
    candidates: &[(usize, Verdict)],
    cap: Option<(u32, chrono::Duration)>,
    now: DateTime<Utc>,
) -> Result<Reserved, OutboundError> {
    if candidates.is_empty() {
        return Ok(Reserved::default());
    }
    let mut wanted: Vec<(Uuid, Uuid, bool)> = candidates
        .iter()
        .map(|(i, _)| {
            let m = &batch[*i];
            (m.message_id, m.subject_id, m.marketing)
        })
        .collect();
    let of_campaign: HashMap<Uuid, Uuid> = candidates
        .iter()
        .filter_map(|(i, _)| Some((batch[*i].message_id, batch[*i].campaign_id?)))
        .collect();
    db.run(move |conn| {
        let marketing = |wanted: &[(Uuid, Uuid, bool)]| -> BTreeSet<Uuid> {
            wanted
                .iter()
                .filter(|(_, _, marketing)| *marketing)
                .map(|(_, subject, _)| *subject)
                .collect()
        };
        if cap.is_some() {
            let subjects = marketing(&wanted);
            if !subjects.is_empty() {
                let keys: Vec<String> = subjects.iter().map(Uuid::to_string).collect();
                // In subject order, so two batches locking overlapping subjects cannot deadlock.
                diesel::sql_query(
                    "SELECT pg_advisory_xact_lock(hashtextextended(s, 7)) \
                     FROM (SELECT s FROM unnest($1) AS s ORDER BY s) AS ordered",
                )
                .bind::<Array<Text>, _>(&keys)
                .execute(conn)?;
            }
        }
        // Shared with other workers, exclusive of a pause or a cancellation: once either has
        // returned, no message of the campaign is marked sending any more. Taken after the
        // subjects' locks, which pausing and cancelling never take.
        let ids: BTreeSet<Uuid> = of_campaign.values().copied().collect();
        let running: HashSet<Uuid> = campaigns::table
            .filter(campaigns::campaign_id.eq_any(&ids))
            .order(campaigns::campaign_id)
            .select((campaigns::campaign_id, campaigns::state))
            .for_share()
            .load::<(Uuid, String)>(conn)?
            .into_iter()
            .filter(|(_, state)| state == State::Running.as_str())
            .map(|(id, _)| id)
            .collect();
        let stopped: Vec<Uuid> = of_campaign
            .iter()
            .filter(|(_, campaign)| !running.contains(campaign))
            .map(|(message, _)| *message)
            .collect();
        if !stopped.is_empty() {
            wanted.retain(|(id, _, _)| !stopped.contains(id));
            diesel::update(
                messages::table
                    .filter(messages::message_id.eq_any(&stopped))
                    .filter(messages::claimed_by.eq(worker)),
            )
            .set((
                messages::claimed_by.eq(None::<Uuid>),
                messages::claimed_until.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)?;
        }
        let mut over = HashSet::new();
        if let Some((limit, window)) = cap {
            let subjects = marketing(&wanted);
            if !subjects.is_empty() {
                let ids: Vec<Uuid> = wanted.iter().map(|(id, _, _)| *id).collect();
                let since = now - window;
                let counted: Vec<(Uuid, i64)> = messages::table
                    .filter(messages::marketing.eq(true))
                    .filter(messages::subject_id.eq_any(&subjects))
                    .filter(messages::message_id.ne_all(&ids))
                    .filter(
                        messages::status
                            .eq(Status::Sending.as_str())
                            .or(messages::status
                                .eq(Status::Sent.as_str())
                                .and(messages::sent_at.gt(since))),
                    )
                    .group_by(messages::subject_id)
                    .select((messages::subject_id, diesel::dsl::count_star()))
                    .load(conn)?;
                let mut counts: HashMap<Uuid, i64> = counted.into_iter().collect();
                for (id, subject, marketing) in &wanted {
                    if !marketing {
                        continue;
                    }
                    let count = counts.entry(*subject).or_default();
                    if *count >= i64::from(limit) {
                        over.insert(*id);
                    } else {
                        *count += 1;
                    }
                }
            }
        }
        let sending: Vec<Uuid> = wanted
            .iter()
            .map(|(id, _, _)| *id)
            .filter(|id| !over.contains(id))
            .collect();
        let sending: HashSet<Uuid> = diesel::update(
            messages::table
                .filter(messages::message_id.eq_any(&sending))
                .filter(messages::claimed_by.eq(worker)),
        )
        .set((
            messages::status.eq(Status::Sending.as_str()),
            messages::updated_at.eq(now),
        ))
        .returning(messages::message_id)
        .get_results::<Uuid>(conn)?
        .into_iter()
        .collect();
        Ok::<_, OutboundError>(Reserved { over, sending })
    })
    .await
}
