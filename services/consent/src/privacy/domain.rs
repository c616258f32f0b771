//! What consent holds of a subject, and what each data subject right does to it here.

use chrono::{DateTime, Utc};
use ecrm_platform::Db;
use ecrm_platform::privacy::ExportRecord;
use serde_json::json;
use uuid::Uuid;

use super::store;
use crate::dsr::store as request_store;
use crate::error::ConsentError;
use crate::ledger::store as ledger_store;

/// Kept after an erasure, and why.
#[derive(Debug, Clone)]
pub struct Retained {
    pub category: &'static str,
    pub count: u64,
    pub legal_reason: &'static str,
}

#[derive(Debug, Clone)]
pub struct Receipt {
    /// Erased, by category, with counts.
    pub erased: Vec<(&'static str, u64)>,
    pub retained: Vec<Retained>,
    pub completed_at: DateTime<Utc>,
    pub replayed: bool,
}

pub const LEDGER: &str = "consent.ledger";
pub const REQUESTS: &str = "consent.requests";
pub const RESTRICTION: &str = "consent.restriction";
/// Exports delivered for earlier access requests, kept sealed until the subject is erased.
pub const DELIVERED_EXPORTS: &str = "consent.delivered_exports";
/// Corrections of rectification requests not carried out yet.
pub const PENDING_CORRECTIONS: &str = "consent.pending_corrections";
const LEDGER_REASON: &str = "GDPR Art. 7(1): the controller must be able to demonstrate consent; \
     the ledger is keyed by subject id only and holds no name or contact details";
const REQUESTS_REASON: &str = "GDPR Art. 5(2) and 12: records of how data subject requests were \
     answered, kept to demonstrate compliance; keyed by subject id only";

#[derive(Debug, Clone)]
pub struct Privacy {
    db: Db,
}

impl Privacy {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Everything consent holds about `subject`.
    pub async fn export(&self, subject: Uuid) -> Result<Vec<ExportRecord>, ConsentError> {
        self.db
            .run(move |conn| {
                let mut records = Vec::new();
                for entry in ledger_store::list_by_subject_after(conn, subject, None, i64::MAX)? {
                    records.push(ExportRecord {
                        category: LEDGER,
                        record_id: entry.id.to_string(),
                        document: json!({
                            "sequence": entry.sequence,
                            "purpose": entry.purpose_key,
                            "decision": entry.decision,
                            "channel": entry.channel,
                            "collection_point": entry.collection_point,
                            "notice_version": entry.notice_version,
                            "evidence": {
                                "ip_hash": entry.ip_hash,
                                "user_agent": entry.user_agent,
                                "form_id": entry.form_id,
                            },
                            "expires_at": entry.expires_at,
                            "recorded_by_kind": entry.recorded_by_kind,
                            "recorded_at": entry.recorded_at,
                            "hash": hex::encode(&entry.hash),
                        }),
                    });
                }
                for request in request_store::list_by_subject(conn, subject)? {
                    let history: Vec<serde_json::Value> =
                        request_store::list_events(conn, request.id)?
                            .into_iter()
                            .map(|e| json!({ "status": e.to_status, "at": e.at, "note": e.note }))
                            .collect();
                    records.push(ExportRecord {
                        category: REQUESTS,
                        record_id: request.id.to_string(),
                        document: json!({
                            "type": request.kind,
                            "status": request.status,
                            "channel": request.channel,
                            "received_at": request.received_at,
                            "due_on": request.due_on,
                            "history": history,
                        }),
                    });
                }
                if let Some((restricted, changed_at)) = store::find_restriction(conn, subject)? {
                    records.push(ExportRecord {
                        category: RESTRICTION,
                        record_id: subject.to_string(),
                        document: json!({ "restricted": restricted, "changed_at": changed_at }),
                    });
                }
                Ok(records)
            })
            .await
    }

    /// Erases the subject's restriction and the exports delivered to it earlier, and keeps what
    /// the law asks consent to keep (proof of consent, records of requests), keyed by subject
    /// id, as the receipt says. A request id already carried out is harmless.
    pub async fn erase(&self, subject: Uuid, request: Uuid) -> Result<Receipt, ConsentError> {
        self.db
            .run(move |conn| {
                if let Some((erased, _)) = store::find_erasure(conn, request)?
                    && erased != subject
                {
                    return Err(ConsentError::invalid(
                        "request_id",
                        "already used to erase another subject",
                    ));
                }
                let replayed = store::insert_erasure(conn, request, subject)?;
                // What consent holds beyond what the law asks it to keep: gone.
                let mut erased = Vec::new();
                let restriction = store::delete_restriction(conn, subject)?;
                let exports = crate::orchestration::store::update_forget_exports(conn, subject)?;
                let corrections = request_store::update_forget_corrections_of(conn, subject)?;
                if !replayed {
                    erased.push((RESTRICTION, restriction as u64));
                    erased.push((DELIVERED_EXPORTS, exports as u64));
                    erased.push((PENDING_CORRECTIONS, corrections as u64));
                }
                let completed_at =
                    store::find_erasure(conn, request)?.map_or_else(Utc::now, |(_, at)| at);
                let entries =
                    ledger_store::list_by_subject_after(conn, subject, None, i64::MAX)?.len();
                let requests = request_store::list_by_subject(conn, subject)?.len();
                let mut retained = Vec::new();
                if entries > 0 {
                    retained.push(Retained {
                        category: LEDGER,
                        count: entries as u64,
                        legal_reason: LEDGER_REASON,
                    });
                }
                if requests > 0 {
                    retained.push(Retained {
                        category: REQUESTS,
                        count: requests as u64,
                        legal_reason: REQUESTS_REASON,
                    });
                }
                Ok(Receipt {
                    erased,
                    retained,
                    completed_at,
                    replayed,
                })
            })
            .await
    }

    /// Sets or lifts the subject's restriction; every consent check denies a restricted one.
    pub async fn restrict(
        &self,
        subject: Uuid,
        request: Uuid,
        restricted: bool,
    ) -> Result<DateTime<Utc>, ConsentError> {
        self.db
            .run(move |conn| {
                store::upsert_restriction(conn, subject, restricted, request)?;
                Ok(store::find_restriction(conn, subject)?.map_or_else(Utc::now, |(_, at)| at))
            })
            .await
    }
}
