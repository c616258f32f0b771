//! Export, erasure and restriction of one subject's data: its messages, the campaigns it was a
//! recipient of, its one-click unsubscribes and its restriction. Suppressions are blind indexes
//! of addresses, linked to no subject: none is exported or erased with a subject, and each
//! outlives the erasure so an address that objected is never written to again.

use chrono::{DateTime, Utc};
use ecrm_platform::Db;
use ecrm_platform::privacy::ExportRecord;
use serde_json::json;
use uuid::Uuid;

use super::store;
use crate::error::OutboundError;
use crate::messages::store as messages_store;
use crate::unsubscribe::store as unsubscribes_store;

pub const MESSAGES: &str = "outbound.messages";
pub const CAMPAIGN_RECIPIENTS: &str = "outbound.campaign_recipients";
pub const UNSUBSCRIBES: &str = "outbound.unsubscribes";
pub const RESTRICTIONS: &str = "outbound.restrictions";
pub const SUPPRESSIONS: &str = "outbound.suppressions";

/// Why suppressions stay after an erasure.
pub const SUPPRESSIONS_REASON: &str = "GDPR Art. 21(3) and 17(3)(b) and (e): an address that \
     bounced, complained, unsubscribed or objected is never written to again, so its \
     suppression outlives the erasure of the customer it was added for; it is kept only as a \
     blind index (an HMAC) of the address, linked to no subject id, so none can be found or \
     counted for the subject";

/// Kept after an erasure, and why.
#[derive(Debug, Clone)]
pub struct Retained {
    pub category: &'static str,
    /// How many are kept; 0 when they cannot be counted for the subject.
    pub count: u64,
    pub legal_reason: &'static str,
}

/// What an erasure deleted, per category, what it kept, and when it was first carried out.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub erased: Vec<(String, u64)>,
    pub retained: Vec<Retained>,
    pub completed_at: DateTime<Utc>,
    pub replayed: bool,
}

/// Whether the subject is restricted after a `Restrict`, since when.
#[derive(Debug, Clone, Copy)]
pub struct Restriction {
    pub restricted: bool,
    pub effective_at: DateTime<Utc>,
}

/// Suppressions are linked to no subject: kept, uncounted, whatever the erasure.
fn retained() -> Vec<Retained> {
    vec![Retained {
        category: SUPPRESSIONS,
        count: 0,
        legal_reason: SUPPRESSIONS_REASON,
    }]
}

#[derive(Debug, Clone)]
pub struct Privacy {
    db: Db,
}

impl Privacy {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Every record about the subject: its messages, the campaigns it was a recipient of, its
    /// one-click unsubscribes and its restriction.
    pub async fn export(&self, subject: Uuid) -> Result<Vec<ExportRecord>, OutboundError> {
        self.db
            .run(move |conn| {
                let mut records = Vec::new();
                for m in messages_store::list_by_subject(conn, subject, None, i64::MAX)? {
                    records.push(ExportRecord {
                        category: MESSAGES,
                        record_id: m.message_id.to_string(),
                        document: json!({
                            "message_id": m.message_id,
                            "channel": m.channel,
                            "purpose": m.purpose_key,
                            "marketing": m.marketing,
                            "template_key": m.template_key,
                            "locale": m.locale,
                            "rendered_locale": m.rendered_locale,
                            "template_version": m.template_version,
                            "variables": m.variables,
                            "campaign_id": m.campaign_id,
                            "idempotency_key": m.idempotency_key,
                            "status": m.status,
                            "reason": m.reason,
                            "detail": m.detail,
                            "attempts": m.attempts,
                            "provider_id": m.provider_id,
                            "requested_by": m.requested_by,
                            "created_at": m.created_at,
                            "updated_at": m.updated_at,
                            "sent_at": m.sent_at,
                        }),
                    });
                }
                for c in store::list_campaigns_by_recipient(conn, subject)? {
                    records.push(ExportRecord {
                        category: CAMPAIGN_RECIPIENTS,
                        record_id: format!("{}/{subject}", c.campaign_id),
                        document: json!({
                            "campaign_id": c.campaign_id,
                            "name": c.name,
                            "channel": c.channel,
                            "purpose": c.purpose_key,
                            "started_at": c.started_at,
                        }),
                    });
                }
                for u in unsubscribes_store::list_by_subject(conn, subject)? {
                    records.push(ExportRecord {
                        category: UNSUBSCRIBES,
                        record_id: u.unsubscribe_id.to_string(),
                        document: json!({
                            "purpose": u.purpose_key,
                            "channel": u.channel,
                            "requested_at": u.requested_at,
                            "ip_hash": u.ip_hash,
                            "user_agent": u.user_agent,
                            "forwarded_to_consent_at": u.forwarded_at,
                            "refused_by_consent_at": u.refused_at,
                        }),
                    });
                }
                if let Some(r) = store::find_restriction(conn, subject)? {
                    records.push(ExportRecord {
                        category: RESTRICTIONS,
                        record_id: subject.to_string(),
                        document: json!({
                            "restricted": true,
                            "restricted_at": r.restricted_at,
                            "request_id": r.request_id,
                        }),
                    });
                }
                Ok(records)
            })
            .await
    }

    /// Deletes the subject's messages, campaign recipient rows, unsubscribes and restriction;
    /// repeating `request` replays the first receipt. A `request` already used for another
    /// subject is refused.
    pub async fn erase(&self, subject: Uuid, request: Uuid) -> Result<Receipt, OutboundError> {
        self.db
            .run(move |conn| {
                if !store::insert_erasure(conn, request, subject)? {
                    let done = store::find_erasure(conn, request)?.ok_or(OutboundError::Corrupt)?;
                    if done.subject_id != subject {
                        return Err(OutboundError::invalid(
                            "request_id",
                            "already used to erase another subject",
                        ));
                    }
                    let erased =
                        serde_json::from_value(done.receipt).map_err(|_| OutboundError::Corrupt)?;
                    return Ok(Receipt {
                        erased,
                        retained: retained(),
                        completed_at: done.completed_at,
                        replayed: true,
                    });
                }
                // A one-click unsubscribe not yet forwarded to consent goes too, and with it
                // the block it put on marketing here: the subject is erased at profiles in the
                // same request, so the gate finds no such subject and blocks every message
                // (UNKNOWN_SUBJECT); the address, if suppressed, stays suppressed.
                let erased: Vec<(String, u64)> = [
                    (MESSAGES, store::delete_messages_by_subject(conn, subject)?),
                    (
                        CAMPAIGN_RECIPIENTS,
                        store::delete_campaign_recipients_by_subject(conn, subject)?,
                    ),
                    (
                        UNSUBSCRIBES,
                        store::delete_unsubscribes_by_subject(conn, subject)?,
                    ),
                    (RESTRICTIONS, store::delete_restriction(conn, subject)?),
                ]
                .into_iter()
                .map(|(category, count)| (category.to_owned(), count as u64))
                .collect();
                let completed_at = store::update_erasure_receipt(conn, request, &json!(erased))?;
                Ok(Receipt {
                    erased,
                    retained: retained(),
                    completed_at,
                    replayed: false,
                })
            })
            .await
    }

    /// Restricts the subject (the gate sends it nothing) or lifts the restriction.
    pub async fn restrict(
        &self,
        subject: Uuid,
        request: Uuid,
        restricted: bool,
    ) -> Result<Restriction, OutboundError> {
        self.db
            .run(move |conn| {
                let effective_at = if restricted {
                    store::insert_restriction(conn, subject, request)?.restricted_at
                } else {
                    store::delete_restriction(conn, subject)?;
                    Utc::now()
                };
                Ok(Restriction {
                    restricted,
                    effective_at,
                })
            })
            .await
    }
}
