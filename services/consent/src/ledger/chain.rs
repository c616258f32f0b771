//! The hash chain: each entry's SHA-256 covers its canonical form, which includes the hash of
//! the subject's previous entry, so changing, removing or reordering any entry breaks every
//! hash after it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The hash before a subject's first entry.
pub const GENESIS: [u8; 32] = [0; 32];
/// Names the canonical form, so a future form never hashes like this one.
const FORM: &str = "ecrm.consent.ledger.v1";

/// Everything an entry asserts, as hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryContent<'a> {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub sequence: i64,
    pub purpose_key: &'a str,
    pub decision: &'a str,
    pub channel: &'a str,
    pub collection_point: &'a str,
    pub notice_version: Option<&'a str>,
    pub ip_hash: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub form_id: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    pub recorded_by: &'a str,
    pub recorded_by_kind: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub previous_hash: &'a [u8],
}

impl EntryContent<'_> {
    /// The canonical form: every field length-prefixed in a fixed order (absent and empty
    /// differ), times as microseconds since the epoch, as PostgreSQL keeps them.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let mut field = |bytes: Option<&[u8]>| match bytes {
            None => out.push(0),
            Some(bytes) => {
                out.push(1);
                out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        };
        let micros = |t: DateTime<Utc>| t.timestamp_micros().to_be_bytes();
        field(Some(FORM.as_bytes()));
        field(Some(self.id.as_bytes()));
        field(Some(self.subject_id.as_bytes()));
        field(Some(&self.sequence.to_be_bytes()));
        field(Some(self.purpose_key.as_bytes()));
        field(Some(self.decision.as_bytes()));
        field(Some(self.channel.as_bytes()));
        field(Some(self.collection_point.as_bytes()));
        field(self.notice_version.map(str::as_bytes));
        field(self.ip_hash.map(str::as_bytes));
        field(self.user_agent.map(str::as_bytes));
        field(self.form_id.map(str::as_bytes));
        field(self.expires_at.map(micros).as_ref().map(|b| b.as_slice()));
        field(Some(self.recorded_by.as_bytes()));
        field(Some(self.recorded_by_kind.as_bytes()));
        field(Some(&micros(self.recorded_at)));
        field(Some(self.previous_hash));
        out
    }

    pub fn hash(&self) -> [u8; 32] {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.canonical());
        let mut hash = [0; 32];
        hash.copy_from_slice(digest.as_ref());
        hash
    }
}

/// `time` as PostgreSQL stores it: microseconds, so what is hashed is what is read back.
pub fn to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(previous: &[u8]) -> EntryContent<'_> {
        EntryContent {
            id: Uuid::nil(),
            subject_id: Uuid::nil(),
            sequence: 1,
            purpose_key: "marketing_email",
            decision: "granted",
            channel: "email",
            collection_point: "checkout",
            notice_version: Some("abc"),
            ip_hash: None,
            user_agent: Some(""),
            form_id: None,
            expires_at: None,
            recorded_by: "web",
            recorded_by_kind: "internal",
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap_or_default(),
            previous_hash: previous,
        }
    }

    #[test]
    fn every_field_counts_and_absent_differs_from_empty() {
        let base = entry(&GENESIS);
        let hash = base.hash();
        assert_eq!(hash, entry(&GENESIS).hash(), "deterministic");
        let changed = [
            EntryContent {
                sequence: 2,
                ..base.clone()
            },
            EntryContent {
                decision: "withdrawn",
                ..base.clone()
            },
            EntryContent {
                notice_version: None,
                ..base.clone()
            },
            EntryContent {
                user_agent: None,
                ..base.clone()
            },
            EntryContent {
                ip_hash: Some(""),
                ..base.clone()
            },
            EntryContent {
                recorded_at: base.recorded_at + chrono::Duration::microseconds(1),
                ..base.clone()
            },
            EntryContent {
                previous_hash: &[1; 32],
                ..base.clone()
            },
            // Moving bytes from one field to the next is another entry.
            EntryContent {
                purpose_key: "marketing_emai",
                channel: "lemail",
                ..base.clone()
            },
        ];
        for other in changed {
            assert_ne!(other.hash(), hash, "{other:?}");
        }
    }
}
