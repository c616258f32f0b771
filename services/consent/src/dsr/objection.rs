//! Carrying out an objection to direct marketing (Art. 21(2), (3)): every direct-marketing
//! purpose the subject had granted is withdrawn in the ledger, and the objection is recorded,
//! so every later check denies those purposes until the subject grants one again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::ConsentError;
use crate::ledger::domain::{Decision, NewDecision, append};
use crate::ledger::store as ledger_store;
use crate::purposes::domain::{Channel, purpose_from_row};
use crate::purposes::store as purpose_store;
use crate::schema::consent::objections;

/// What collection point the withdrawals an objection writes name.
const COLLECTION_POINT: &str = "objection";

/// Records the objection and withdraws what the subject had granted; returns how many
/// purposes and channels were withdrawn.
pub fn carry_out(
    conn: &mut PgConnection,
    caller: &Caller,
    subject: Uuid,
    request: Uuid,
) -> Result<usize, ConsentError> {
    diesel::insert_into(objections::table)
        .values((
            objections::subject_id.eq(subject),
            objections::request_id.eq(request),
            objections::objected_at.eq(diesel::dsl::now),
        ))
        .on_conflict(objections::subject_id)
        .do_update()
        .set((
            objections::request_id.eq(request),
            objections::objected_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    let latest: HashMap<(String, String), String> =
        ledger_store::list_latest_by_subject(conn, subject)?
            .into_iter()
            .map(|entry| ((entry.purpose_key, entry.channel), entry.decision))
            .collect();
    let mut withdrawn = 0;
    for row in purpose_store::list_direct_marketing(conn)? {
        let purpose = purpose_from_row(row)?;
        for channel in &purpose.channels {
            let granted = latest
                .get(&(purpose.key.clone(), channel.as_str().to_owned()))
                .is_some_and(|d| d == Decision::Granted.as_str());
            if granted {
                append(conn, caller, &withdrawal(subject, &purpose.key, *channel))?;
                withdrawn += 1;
            }
        }
    }
    Ok(withdrawn)
}

fn withdrawal(subject: Uuid, purpose: &str, channel: Channel) -> NewDecision {
    NewDecision {
        subject_id: subject,
        purpose_key: purpose.to_owned(),
        decision: Decision::Withdrawn,
        channel,
        collection_point: COLLECTION_POINT.to_owned(),
        notice_version: None,
        ip_hash: None,
        user_agent: None,
        form_id: None,
        expires_at: None,
    }
}

/// When each of `subjects` that objected did so.
pub fn list_objected(
    conn: &mut PgConnection,
    subjects: &[Uuid],
) -> QueryResult<HashMap<Uuid, DateTime<Utc>>> {
    Ok(objections::table
        .filter(objections::subject_id.eq_any(subjects))
        .select((objections::subject_id, objections::objected_at))
        .load::<(Uuid, DateTime<Utc>)>(conn)?
        .into_iter()
        .collect())
}
