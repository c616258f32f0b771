//! Export, erasure and restriction of one subject's data, as data subject requests need them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ecrm_crypto::BlindIndexKey;
use ecrm_platform::Db;
use ecrm_platform::privacy::ExportRecord;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::rectify::{Correction, sort_corrections};
use crate::access_log::{self, Action};
use crate::attributes::domain::ValueType;
use crate::attributes::store as attribute_store;
use crate::caller::Caller;
use crate::changes::domain::{ChangeKind, ChangeSignal, NewChange};
use crate::changes::store as change_store;
use crate::disclosures;
use crate::error::ProfilesError;
use crate::identifiers::store as identifier_store;
use crate::interactions::domain::{INTERACTION_TABLE, InteractionKind};
use crate::interactions::store as interaction_store;
use crate::keys::{self, SubjectKeys};
use crate::notices::{self, NoticeKind};
use crate::profiles::domain::{
    Overwrite, SubjectLookup, apply_changes, lock_live, mark_updated, resolve,
};
use crate::profiles::store;
use crate::profiles::view::{self, MERGE_TABLE};

/// Why orders and returns outlive an erasure.
pub const ACCOUNTING_REASON: &str =
    "accounting records: French Commercial Code art. L123-22, kept 10 years";

/// Why the notices to recipients outlive an erasure.
pub const NOTICE_REASON: &str =
    "GDPR Art. 19 and 5(2): the record that each recipient was told; names the subject by id only";

/// The source of values corrected at the subject's request.
const RECTIFICATION_SOURCE: &str = "rectification";

/// What a rectification did.
#[derive(Debug, Clone, Default)]
pub struct Rectified {
    pub applied: Vec<String>,
    pub not_held: Vec<String>,
    pub notified: Vec<String>,
}

/// A change of restriction, and the recipients told of it.
#[derive(Debug, Clone)]
pub struct Restriction {
    pub restricted: bool,
    pub since: DateTime<Utc>,
    pub notified: Vec<String>,
}

/// What an erasure did, as stored and replayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub subject_id: Uuid,
    pub erased: Vec<(String, u64)>,
    pub retained: Vec<Retained>,
    pub completed_at: DateTime<Utc>,
    #[serde(skip)]
    pub replayed: bool,
    #[serde(default)]
    pub notified_recipients: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retained {
    pub category: String,
    pub count: u64,
    pub legal_reason: String,
    pub retain_until: Option<DateTime<Utc>>,
    pub pseudonymised: bool,
}

#[derive(Debug)]
pub struct Privacy {
    db: Db,
    keys: SubjectKeys,
    lookup_key: BlindIndexKey,
    signal: ChangeSignal,
    interaction: MessageDescriptor,
}

impl Privacy {
    pub fn new(
        db: Db,
        keys: SubjectKeys,
        lookup_key: BlindIndexKey,
        signal: ChangeSignal,
    ) -> Result<Self, ProfilesError> {
        let pool = DescriptorPool::decode(ecrm_proto::FILE_DESCRIPTOR_SET)
            .map_err(|_| ProfilesError::Corrupt)?;
        let interaction = pool
            .get_message_by_name("ecrm.profiles.v1.Interaction")
            .ok_or(ProfilesError::Corrupt)?;
        Ok(Self {
            db,
            keys,
            lookup_key,
            signal,
            interaction,
        })
    }

    /// Every record about the subject (the profile it was merged into, if it was). Works for a
    /// restricted subject; an erased or unknown one has none.
    pub async fn export(
        &self,
        caller: Caller,
        subject: Uuid,
    ) -> Result<Vec<ExportRecord>, ProfilesError> {
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        let descriptor = self.interaction.clone();
        self.db
            .run(move |conn| {
                let Some(row) = resolve(conn, &lookup_key, &SubjectLookup::Id(subject))? else {
                    return Ok(Vec::new());
                };
                let subject = row.subject_id;
                access_log::record(conn, &caller, Action::Read, &[subject])?;
                let key = keys.get(conn, subject)?;
                let mut records = vec![ExportRecord {
                    category: "profile",
                    record_id: subject.to_string(),
                    document: json!({
                        "subject_id": subject,
                        "created_at": row.created_at,
                        "updated_at": row.updated_at,
                        "restricted_since": row.restricted_at,
                    }),
                }];
                for r in identifier_store::list_by_subjects(conn, &[subject])? {
                    let id = r.id;
                    let stored = view::open_identifier(&key, r)?;
                    records.push(ExportRecord {
                        category: "profile.identifiers",
                        record_id: id.to_string(),
                        document: json!({
                            "kind": stored.identifier.kind.as_str(),
                            "value": stored.identifier.value.expose(),
                            "partner_id": stored.identifier.partner_id,
                            "custom_type": stored.identifier.custom_type,
                            "verified_at": stored.verified_at,
                            "verification_method": stored.verification_method,
                            "source": stored.source,
                            "added_at": stored.added_at,
                        }),
                    });
                }
                for r in attribute_store::list_by_subject(conn, subject)? {
                    let (name, value) = view::open_attribute(&key, &r)?;
                    records.push(ExportRecord {
                        category: "profile.attributes",
                        record_id: r.id.to_string(),
                        document: json!({
                            "name": name.to_string(),
                            "value": value,
                            "current": r.current,
                            "source": r.source,
                            "recorded_at": r.recorded_at,
                        }),
                    });
                }
                for r in interaction_store::list_all_by_subject(conn, subject)? {
                    let payload = match &r.sealed_payload {
                        Some(sealed) => keys::open(&key, INTERACTION_TABLE, r.id, sealed)?,
                        None => continue,
                    };
                    let message = DynamicMessage::decode(descriptor.clone(), payload.as_slice())
                        .map_err(|_| ProfilesError::Corrupt)?;
                    let mut document =
                        serde_json::to_value(&message).map_err(|_| ProfilesError::Corrupt)?;
                    if let Some(object) = document.as_object_mut() {
                        object.insert("kind".to_owned(), json!(r.kind));
                        object.insert("recorded_at".to_owned(), json!(r.recorded_at));
                    }
                    records.push(ExportRecord {
                        category: "interactions",
                        record_id: r.id.to_string(),
                        document,
                    });
                }
                for r in store::list_merges_by_subject(conn, subject)? {
                    let reason = keys::open_text(&key, MERGE_TABLE, r.id, &r.sealed_reason)?;
                    records.push(ExportRecord {
                        category: "profile.merges",
                        record_id: r.id.to_string(),
                        document: json!({
                            "merged_subject_id": r.merged_subject_id,
                            "reason": reason,
                            "by": r.principal,
                            "merged_at": r.merged_at,
                        }),
                    });
                }
                for r in disclosures::list_by_subject(conn, subject)? {
                    records.push(ExportRecord {
                        category: "disclosures",
                        record_id: r.id.to_string(),
                        document: json!({
                            "recipient_partner_id": r.partner_id,
                            "fields": r.fields.into_iter().flatten().collect::<Vec<_>>(),
                            "disclosed_at": r.disclosed_at,
                        }),
                    });
                }
                for r in notices::list_by_subject(conn, subject)? {
                    records.push(ExportRecord {
                        category: "recipient_notices",
                        record_id: r.id.to_string(),
                        document: json!({
                            "recipient_partner_id": r.partner_id,
                            "kind": r.kind,
                            "request_id": r.request_id,
                            "fields": r.fields.into_iter().flatten().collect::<Vec<_>>(),
                            "issued_at": r.issued_at,
                            "acknowledged_at": r.acknowledged_at,
                        }),
                    });
                }
                // Last, so the export lists the accesses up to and including itself.
                for r in access_log::list_by_subject(conn, subject)? {
                    records.push(ExportRecord {
                        category: "access_log",
                        record_id: r.id.to_string(),
                        document: json!({
                            "principal": r.principal,
                            "principal_kind": r.principal_kind,
                            "partner_id": r.partner_id,
                            "on_behalf_of": r.on_behalf_of,
                            "purpose": r.purpose,
                            "method": r.method,
                            "action": r.action,
                            "at": r.at,
                        }),
                    });
                }
                Ok(records)
            })
            .await
    }

    /// Erases the subject: its key first (every ciphertext of it, in any copy, becomes
    /// unreadable), then its rows; orders and returns stay, unlinked, for accounting.
    pub async fn erase(&self, subject: Uuid, request_id: Uuid) -> Result<Receipt, ProfilesError> {
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        let receipt = self
            .db
            .run(move |conn| -> Result<Receipt, ProfilesError> {
                if let Some(done) = store::find_erasure(conn, request_id)? {
                    let mut receipt: Receipt =
                        serde_json::from_value(done.receipt).map_err(|_| ProfilesError::Corrupt)?;
                    receipt.replayed = true;
                    return Ok(receipt);
                }
                let resolved = resolve(conn, &lookup_key, &SubjectLookup::Id(subject))?;
                let mut receipt = Receipt {
                    subject_id: subject,
                    erased: Vec::new(),
                    retained: Vec::new(),
                    completed_at: Utc::now(),
                    replayed: false,
                    notified_recipients: Vec::new(),
                };
                if let Some(row) = resolved {
                    let target = lock_live(conn, row.subject_id)?.subject_id;
                    // Before the disclosures and references that name the recipients go.
                    receipt.notified_recipients = notices::notify_recipients(
                        conn,
                        target,
                        NoticeKind::Erased,
                        &[],
                        request_id,
                    )?;
                    keys.destroy(conn, target)?;
                    let accounting: Vec<&str> = InteractionKind::ALL
                        .into_iter()
                        .filter(|k| k.is_accounting_record())
                        .map(InteractionKind::as_str)
                        .collect();
                    let (kept, until) =
                        interaction_store::pseudonymise_by_subject(conn, target, &accounting)?;
                    let counts = [
                        (
                            "profile.identifiers",
                            identifier_store::delete_by_subject(conn, target)?,
                        ),
                        (
                            "profile.attributes",
                            attribute_store::delete_by_subject(conn, target)?,
                        ),
                        (
                            "interactions",
                            interaction_store::delete_by_subject(conn, target)?,
                        ),
                        (
                            "profile.merges",
                            store::delete_merges_by_subject(conn, target)?,
                        ),
                        ("disclosures", disclosures::delete_by_subject(conn, target)?),
                        ("access_log", access_log::delete_by_subject(conn, target)?),
                    ];
                    receipt.erased = counts
                        .into_iter()
                        .map(|(category, count)| (category.to_owned(), count as u64))
                        .collect();
                    if kept > 0 {
                        receipt.retained.push(Retained {
                            category: "interactions.orders".to_owned(),
                            count: kept as u64,
                            legal_reason: ACCOUNTING_REASON.to_owned(),
                            retain_until: until,
                            pseudonymised: true,
                        });
                    }
                    let told = notices::list_by_subject(conn, target)?.len();
                    if told > 0 {
                        receipt.retained.push(Retained {
                            category: "recipient_notices".to_owned(),
                            count: told as u64,
                            legal_reason: NOTICE_REASON.to_owned(),
                            retain_until: None,
                            pseudonymised: true,
                        });
                    }
                    change_store::delete_by_subject(conn, target)?;
                    change_store::record(conn, &[NewChange::of(ChangeKind::Erased, target)])?;
                    store::mark_erased(conn, target)?;
                    // The subjects merged into it were the same person: their tombstones go too.
                    for (_, merged) in store::list_merged_into(conn, &[target])? {
                        change_store::delete_by_subject(conn, merged)?;
                        access_log::delete_by_subject(conn, merged)?;
                    }
                    receipt.subject_id = target;
                }
                let stored = serde_json::to_value(&receipt).map_err(|_| ProfilesError::Corrupt)?;
                let row = store::insert_erasure(conn, request_id, subject, &stored)?;
                receipt.completed_at = row.completed_at;
                Ok(receipt)
            })
            .await?;
        self.signal.notify_waiters();
        Ok(receipt)
    }

    /// Turns the restriction of processing on or off for `request`, and tells the recipients
    /// of the subject's data (Art. 19).
    pub async fn restrict(
        &self,
        caller: Caller,
        subject: Uuid,
        request: Uuid,
        restricted: bool,
    ) -> Result<Restriction, ProfilesError> {
        let lookup_key = self.lookup_key.clone();
        let state = self
            .db
            .run(move |conn| -> Result<Restriction, ProfilesError> {
                let row = resolve(conn, &lookup_key, &SubjectLookup::Id(subject))?
                    .ok_or(ProfilesError::NotFound("profile"))?;
                let row = lock_live(conn, row.subject_id)?;
                let since = match (row.restricted_at, restricted) {
                    (Some(since), true) => since,
                    (None, false) => row.updated_at,
                    _ => {
                        let now = Utc::now();
                        store::update_restricted(conn, row.subject_id, restricted.then_some(now))?;
                        change_store::record(
                            conn,
                            &[NewChange {
                                restricted: Some(restricted),
                                ..NewChange::of(ChangeKind::Restricted, row.subject_id)
                            }],
                        )?;
                        access_log::record(conn, &caller, Action::Write, &[row.subject_id])?;
                        now
                    }
                };
                let kind = if restricted {
                    NoticeKind::Restricted
                } else {
                    NoticeKind::RestrictionLifted
                };
                // Also when the state was already so: a retry of this request after a lost
                // answer tells no one twice, and a request is never left untold.
                let notified =
                    notices::notify_recipients(conn, row.subject_id, kind, &[], request)?;
                Ok(Restriction {
                    restricted,
                    since,
                    notified,
                })
            })
            .await?;
        self.signal.notify_waiters();
        Ok(state)
    }

    /// Applies the corrections profiles holds (Art. 16) as the subject's current values, and
    /// tells the recipients of the subject's data which fields were corrected (Art. 19). A
    /// subject profiles does not know holds none of the fields.
    pub async fn rectify(
        &self,
        caller: Caller,
        subject: Uuid,
        request: Uuid,
        corrections: Vec<Correction>,
    ) -> Result<Rectified, ProfilesError> {
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        let rectified = self
            .db
            .run(move |conn| -> Result<Rectified, ProfilesError> {
                let Some(row) = resolve(conn, &lookup_key, &SubjectLookup::Id(subject))? else {
                    return Ok(Rectified {
                        not_held: corrections.into_iter().map(|c| c.field).collect(),
                        ..Rectified::default()
                    });
                };
                let subject = lock_live(conn, row.subject_id)?.subject_id;
                let definitions: HashMap<String, ValueType> =
                    attribute_store::list_definitions(conn)?
                        .into_iter()
                        .filter_map(|row| Some((row.key, ValueType::parse(&row.value_type)?)))
                        .collect();
                let (changes, not_held) = sort_corrections(&corrections, &definitions)?;
                let applied: Vec<String> = changes.iter().map(|c| c.name.to_string()).collect();
                let key = keys.get(conn, subject)?;
                if apply_changes(
                    conn,
                    &key,
                    subject,
                    &changes,
                    RECTIFICATION_SOURCE,
                    Overwrite::Any,
                )? {
                    mark_updated(conn, subject)?;
                }
                access_log::record(conn, &caller, Action::Write, &[subject])?;
                let notified = if applied.is_empty() {
                    Vec::new()
                } else {
                    notices::notify_recipients(
                        conn,
                        subject,
                        NoticeKind::Rectified,
                        &applied,
                        request,
                    )?
                };
                Ok(Rectified {
                    applied,
                    not_held,
                    notified,
                })
            })
            .await?;
        self.signal.notify_waiters();
        Ok(rectified)
    }
}
