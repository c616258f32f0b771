//! Segmentation's side of the consent ledger: who objected to profiling (GDPR Art. 21), as
//! their latest decision for the purpose `profiling`. While the objection stands the customer
//! is in no segment, no RFM score and no tier.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use diesel::PgConnection;
use ecrm_platform::consent_feed::DecisionSink;
use ecrm_platform::time::from_timestamp;
use ecrm_proto::ecrm::consent::v1 as pb;
use uuid::Uuid;

use super::store;
use crate::error::SegmentationError;
use crate::rfm::store as rfm_store;
use crate::segments::maintain::{Maintainer, Touched};

/// The consent purpose whose withdrawal is an objection to profiling.
pub const PROFILING: &str = "profiling";

#[derive(Debug, Clone)]
pub struct Objections {
    memberships: Arc<Maintainer>,
}

impl Objections {
    pub fn new(memberships: Arc<Maintainer>) -> Self {
        Self { memberships }
    }
}

fn uuid(value: &str) -> Result<Uuid, SegmentationError> {
    Uuid::parse_str(value).map_err(|_| SegmentationError::Corrupt)
}

impl DecisionSink for Objections {
    type Error = SegmentationError;

    fn purposes(&self) -> Vec<String> {
        vec![PROFILING.to_owned()]
    }

    /// Records or lifts each objection, then evaluates the customers again for every segment,
    /// in the caller's transaction.
    fn apply(
        &self,
        conn: &mut PgConnection,
        entries: &[pb::LedgerEntry],
    ) -> Result<(), SegmentationError> {
        let mut touched = HashMap::new();
        let mut subjects: Vec<Uuid> = entries
            .iter()
            .filter(|e| e.purpose_key == PROFILING)
            .map(|e| uuid(&e.subject_id))
            .collect::<Result<_, _>>()?;
        subjects.sort_unstable();
        subjects.dedup();
        store::lock_customers(conn, &subjects)?;
        for entry in entries.iter().filter(|e| e.purpose_key == PROFILING) {
            let subject = uuid(&entry.subject_id)?;
            match entry.decision() {
                pb::Decision::Withdrawn => {
                    let at = entry
                        .recorded_at
                        .as_ref()
                        .and_then(from_timestamp)
                        .ok_or(SegmentationError::Corrupt)?;
                    store::upsert_objection(conn, subject, at, uuid(&entry.entry_id)?)?;
                    // In no score while the objection stands.
                    rfm_store::delete_by_subject(conn, subject)?;
                }
                pb::Decision::Granted => {
                    store::delete_objection(conn, subject)?;
                }
                pb::Decision::Unspecified => continue,
            }
            touched.insert(subject, Touched::All);
        }
        self.memberships
            .evaluate_touched(conn, &touched, Utc::now())
    }

    fn committed(&self) {
        self.memberships.changed.notify_waiters();
    }
}
