//! The gate's last step: the frequency cap, checked and counted under a lock per subject, so
//! two workers clearing marketing messages for one subject at once cannot both pass it.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use ecrm_platform::Db;
use uuid::Uuid;

use super::Verdict;
use crate::error::OutboundError;
use crate::messages::domain::Status;
use crate::messages::store::MessageRow;
use crate::schema::outbound::messages;

/// Marks the candidates sending (those `worker` still holds), except marketing ones over the
/// cap, whose ids it returns.
pub async fn reserve(
    db: &Db,
    worker: Uuid,
    batch: &[MessageRow],
    candidates: &[(usize, Verdict)],
    cap: Option<(u32, chrono::Duration)>,
    now: DateTime<Utc>,
) -> Result<HashSet<Uuid>, OutboundError> {
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let wanted: Vec<(Uuid, Uuid, bool)> = candidates
        .iter()
        .map(|(i, _)| {
            let m = &batch[*i];
            (m.message_id, m.subject_id, m.marketing)
        })
        .collect();
    db.run(move |conn| {
        let mut over = HashSet::new();
        if let Some((limit, window)) = cap {
            let subjects: BTreeSet<Uuid> = wanted
                .iter()
                .filter(|(_, _, marketing)| *marketing)
                .map(|(_, subject, _)| *subject)
                .collect();
            if !subjects.is_empty() {
                let keys: Vec<String> = subjects.iter().map(Uuid::to_string).collect();
                // In subject order, so two batches locking overlapping subjects cannot deadlock.
                diesel::sql_query(
                    "SELECT pg_advisory_xact_lock(hashtextextended(s, 7)) \
                     FROM (SELECT s FROM unnest($1) AS s ORDER BY s) AS ordered",
                )
                .bind::<Array<Text>, _>(&keys)
                .execute(conn)?;
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
        diesel::update(
            messages::table
                .filter(messages::message_id.eq_any(&sending))
                .filter(messages::claimed_by.eq(worker)),
        )
        .set((
            messages::status.eq(Status::Sending.as_str()),
            messages::updated_at.eq(now),
        ))
        .execute(conn)?;
        Ok::<_, OutboundError>(over)
    })
    .await
}
