//! What consent does with a change at profiles: a merge of two subjects makes the most
//! restrictive decision of either the survivor's, per purpose and channel, recorded in the
//! ledger; an order makes the subject an existing customer (soft opt-in).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::store;
use crate::caller::Caller;
use crate::error::ConsentError;
use crate::ledger::domain::{Decision, NewDecision, append};
use crate::ledger::store::{self as ledger_store, EntryRow};
use crate::privacy::store as privacy_store;
use crate::purposes::domain::Channel;
use crate::schema::consent::objections;

/// What the ledger entries a merge writes name as their collection point.
pub const MERGE_COLLECTION_POINT: &str = "profile_merge";

/// A change at profiles that matters to consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedChange {
    /// `merged` no longer exists on its own: it is `into`.
    Merged {
        into: Uuid,
        merged: Uuid,
        at: DateTime<Utc>,
    },
    /// The subject ordered something.
    Purchased { subject: Uuid, at: DateTime<Utc> },
}

/// Applies `changes`, in order, in the caller's transaction: the purchases between two merges
/// in one statement.
pub fn apply(conn: &mut PgConnection, changes: &[FeedChange]) -> Result<(), ConsentError> {
    let mut purchases: Vec<(Uuid, DateTime<Utc>)> = Vec::new();
    for change in changes {
        match *change {
            FeedChange::Purchased { subject, at } => purchases.push((subject, at)),
            FeedChange::Merged { into, merged, at } => {
                record_purchases(conn, &purchases)?;
                purchases.clear();
                merge(conn, into, merged, at)?;
            }
        }
    }
    record_purchases(conn, &purchases)
}

/// Records purchases, each under the subject its buyer is now, after the merges seen so far.
fn record_purchases(
    conn: &mut PgConnection,
    purchases: &[(Uuid, DateTime<Utc>)],
) -> Result<(), ConsentError> {
    if purchases.is_empty() {
        return Ok(());
    }
    let buyers: Vec<Uuid> = purchases.iter().map(|(subject, _)| *subject).collect();
    let survivors = store::list_survivors(conn, &buyers)?;
    let mut spans: BTreeMap<Uuid, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for (buyer, at) in purchases {
        let subject = survivors.get(buyer).copied().unwrap_or(*buyer);
        spans
            .entry(subject)
            .and_modify(|(first, last)| {
                *first = (*first).min(*at);
                *last = (*last).max(*at);
            })
            .or_insert((*at, *at));
    }
    let rows: Vec<_> = spans
        .into_iter()
        .map(|(subject, (first, last))| (subject, first, last))
        .collect();
    Ok(store::upsert_purchases(conn, &rows)?)
}

/// The subject `subject` is now, after the merges consent has seen.
pub fn survivor(conn: &mut PgConnection, subject: Uuid) -> Result<Uuid, ConsentError> {
    Ok(store::list_survivors(conn, &[subject])?
        .remove(&subject)
        .unwrap_or(subject))
}

/// The survivor takes the most restrictive decision of either subject for every purpose and
/// channel (appended to its chain when it changes), the objection and the restriction of
/// either, and the purchases of both. The merged subject's own chain stays as it was: the
/// proof of what it agreed to.
fn merge(
    conn: &mut PgConnection,
    into: Uuid,
    merged: Uuid,
    at: DateTime<Utc>,
) -> Result<(), ConsentError> {
    let into = survivor(conn, into)?;
    if into == merged {
        return Ok(());
    }
    let theirs = latest_by_purpose(conn, merged)?;
    let ours = latest_by_purpose(conn, into)?;
    let caller = Caller::service();
    for (key, their) in &theirs {
        let our = ours.get(key);
        let Some(winner) = most_restrictive(our, Some(their)) else {
            continue;
        };
        if our.is_some_and(|our| std::ptr::eq(our, winner)) {
            continue;
        }
        append(conn, &caller, &carried_over(into, winner)?)?;
    }
    let objection: Option<(Uuid, DateTime<Utc>)> = objections::table
        .find(merged)
        .select((objections::request_id, objections::objected_at))
        .first(conn)
        .optional()?;
    if let Some((request, objected_at)) = objection {
        carry_objection(conn, into, request, objected_at)?;
    }
    if let Some(request) = privacy_store::find_active_restriction(conn, merged)? {
        privacy_store::upsert_restriction(conn, into, true, request)?;
    }
    if let Some((first, last)) = store::find_purchases(conn, merged)? {
        store::upsert_purchase(conn, into, first, last)?;
    }
    store::insert_merge(conn, merged, into, at)?;
    Ok(())
}

/// The subject's latest entry per purpose and channel.
fn latest_by_purpose(
    conn: &mut PgConnection,
    subject: Uuid,
) -> Result<BTreeMap<(String, String), EntryRow>, ConsentError> {
    Ok(ledger_store::list_latest_by_subject(conn, subject)?
        .into_iter()
        .map(|entry| ((entry.purpose_key.clone(), entry.channel.clone()), entry))
        .collect())
}

/// Of two latest decisions for one purpose and channel, the one that allows less: a
/// withdrawal over a grant, else the grant that lapses first. The first wins a tie, and a
/// decision wins over none.
pub fn most_restrictive<'a>(
    first: Option<&'a EntryRow>,
    second: Option<&'a EntryRow>,
) -> Option<&'a EntryRow> {
    let (first, second) = match (first, second) {
        (None, other) | (other, None) => return other,
        (Some(first), Some(second)) => (first, second),
    };
    let withdrawn = |e: &EntryRow| e.decision == Decision::Withdrawn.as_str();
    Some(match (withdrawn(first), withdrawn(second)) {
        (true, _) => first,
        (false, true) => second,
        (false, false) => match (first.expires_at, second.expires_at) {
            (_, None) => first,
            (None, Some(_)) => second,
            (Some(a), Some(b)) if b < a => second,
            (Some(_), Some(_)) => first,
        },
    })
}

/// `entry`'s decision, with its notice and evidence, as the survivor's.
fn carried_over(into: Uuid, entry: &EntryRow) -> Result<NewDecision, ConsentError> {
    Ok(NewDecision {
        subject_id: into,
        purpose_key: entry.purpose_key.clone(),
        decision: Decision::parse(&entry.decision).ok_or(ConsentError::Corrupt)?,
        channel: Channel::parse(&entry.channel).ok_or(ConsentError::Corrupt)?,
        collection_point: MERGE_COLLECTION_POINT.to_owned(),
        notice_version: entry.notice_version.clone(),
        ip_hash: entry.ip_hash.clone(),
        user_agent: entry.user_agent.clone(),
        // Where the decision was taken: the merged subject's entry.
        form_id: Some(format!("ledger:{}", entry.id)),
        expires_at: entry.expires_at,
    })
}

/// The survivor objects too, from the later of the two objections.
fn carry_objection(
    conn: &mut PgConnection,
    into: Uuid,
    request: Uuid,
    objected_at: DateTime<Utc>,
) -> Result<(), ConsentError> {
    diesel::sql_query(
        "INSERT INTO objections (subject_id, request_id, objected_at) VALUES ($1, $2, $3) \
         ON CONFLICT (subject_id) DO UPDATE \
           SET request_id = excluded.request_id, objected_at = excluded.objected_at \
           WHERE objections.objected_at < excluded.objected_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(into)
    .bind::<diesel::sql_types::Uuid, _>(request)
    .bind::<diesel::sql_types::Timestamptz, _>(objected_at)
    .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(decision: Decision, expires_in_days: Option<i64>) -> EntryRow {
        let now = Utc::now();
        EntryRow {
            id: Uuid::now_v7(),
            subject_id: Uuid::now_v7(),
            sequence: 1,
            purpose_key: "newsletter".to_owned(),
            decision: decision.as_str().to_owned(),
            channel: "email".to_owned(),
            collection_point: "web".to_owned(),
            notice_version: None,
            ip_hash: None,
            user_agent: None,
            form_id: None,
            expires_at: expires_in_days.map(|d| now + chrono::Duration::days(d)),
            recorded_by: "test".to_owned(),
            recorded_by_kind: "internal".to_owned(),
            recorded_at: now,
            previous_hash: Vec::new(),
            hash: Vec::new(),
        }
    }

    fn pick<'a>(a: Option<&'a EntryRow>, b: Option<&'a EntryRow>) -> Option<Uuid> {
        most_restrictive(a, b).map(|e| e.id)
    }

    #[test]
    fn a_withdrawal_beats_a_grant_and_the_earlier_lapse_beats_the_later() {
        let granted = entry(Decision::Granted, None);
        let withdrawn = entry(Decision::Withdrawn, None);
        let short = entry(Decision::Granted, Some(10));
        let long = entry(Decision::Granted, Some(300));
        assert_eq!(pick(Some(&granted), Some(&withdrawn)), Some(withdrawn.id));
        assert_eq!(pick(Some(&withdrawn), Some(&granted)), Some(withdrawn.id));
        assert_eq!(pick(Some(&long), Some(&short)), Some(short.id));
        assert_eq!(pick(Some(&short), Some(&long)), Some(short.id));
        assert_eq!(pick(Some(&granted), Some(&short)), Some(short.id));
        assert_eq!(pick(Some(&short), Some(&granted)), Some(short.id));
        assert_eq!(pick(None, Some(&granted)), Some(granted.id));
        assert_eq!(pick(Some(&granted), None), Some(granted.id));
        assert_eq!(pick(None, None), None);
        // A tie keeps the first: the survivor's own entry, so nothing is appended.
        let other = entry(Decision::Granted, None);
        assert_eq!(pick(Some(&granted), Some(&other)), Some(granted.id));
    }
}
