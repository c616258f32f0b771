//! Recording decisions, the state they add up to, consent checks, and chain verification.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use std::time::Duration;

use ecrm_platform::Db;
use ecrm_platform::feed::{FeedCursor, FollowOptions, follow};
use ecrm_platform::paging::Page;
use ecrm_proto::ecrm::common::v1::PageResponse;
use futures::Stream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use ring::signature::{Ed25519KeyPair, KeyPair};

use super::chain::{EntryContent, GENESIS, to_micros};
use super::checkpoint;
use super::checkpoint_store::CheckpointRow;
use super::store::{self, EntryRow};
use crate::caller::Caller;
use crate::dsr::objection;
use crate::error::ConsentError;
use crate::follow::domain as follow;
use crate::follow::store as follow_store;
use crate::privacy::store as privacy_store;
use crate::purposes::domain::{self as purposes, Channel, LawfulBasis};
use crate::purposes::store as purpose_store;

/// How the ledger names entries a partner's principal recorded.
const PARTNER_KIND: &str = ecrm_auth::PrincipalKind::Partner.as_str();

/// Most subjects one `CheckConsent` may name.
pub const MAX_CHECK_SUBJECTS: usize = 10_000;
/// Entries read per query while verifying.
const VERIFY_BATCH: i64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Granted,
    Withdrawn,
}

impl Decision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Granted => "granted",
            Decision::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [Decision::Granted, Decision::Withdrawn]
            .into_iter()
            .find(|d| d.as_str() == stored)
    }
}

/// A decision to record, checked for its shape (the purpose is checked when recording).
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub subject_id: Uuid,
    pub purpose_key: String,
    pub decision: Decision,
    pub channel: Channel,
    pub collection_point: String,
    pub notice_version: Option<String>,
    pub ip_hash: Option<String>,
    pub user_agent: Option<String>,
    pub form_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a subject may or may not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Granted,
    /// An existing customer, for a soft opt-in purpose, who neither withdrew nor objected.
    SoftOptIn,
    Contract,
    OtherLawfulBasis,
    Withdrawn,
    Expired,
    NeverAsked,
    /// Processing is restricted (Art. 18): denied whatever the basis.
    Restricted,
    /// The subject objected to direct marketing and has not granted this purpose since.
    Objected,
}

impl Reason {
    pub fn allowed(self) -> bool {
        matches!(
            self,
            Reason::Granted | Reason::SoftOptIn | Reason::Contract | Reason::OtherLawfulBasis
        )
    }
}

/// What the subject's latest decision for one purpose and channel means now; `purchased`
/// when the subject is an existing customer.
pub fn reason(
    basis: LawfulBasis,
    latest: Option<(Decision, Option<DateTime<Utc>>)>,
    purchased: bool,
    now: DateTime<Utc>,
) -> Reason {
    match (basis, latest) {
        (LawfulBasis::Contract, _) => Reason::Contract,
        (
            LawfulBasis::LegalObligation
            | LawfulBasis::VitalInterests
            | LawfulBasis::PublicTask
            | LawfulBasis::LegitimateInterest,
            _,
        ) => Reason::OtherLawfulBasis,
        (LawfulBasis::SoftOptIn, None) if purchased => Reason::SoftOptIn,
        (LawfulBasis::Consent | LawfulBasis::SoftOptIn, None) => Reason::NeverAsked,
        (_, Some((Decision::Withdrawn, _))) => Reason::Withdrawn,
        (_, Some((Decision::Granted, Some(expiry)))) if expiry <= now => Reason::Expired,
        (_, Some((Decision::Granted, _))) => Reason::Granted,
    }
}

/// The decision in force for one purpose and channel.
#[derive(Debug, Clone)]
pub struct State {
    pub entry: EntryRow,
    pub expired: bool,
}

/// Where verification found the ledger broken, and how.
#[derive(Debug, Clone)]
pub struct Broken {
    pub entry_id: Option<Uuid>,
    pub subject_id: Uuid,
    pub sequence: i64,
    pub problem: &'static str,
}

/// What verification found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub entries_checked: u64,
    pub checkpoints_checked: u64,
    /// The first break found.
    pub broken: Option<Broken>,
}

#[derive(Debug, Clone)]
pub struct Ledger {
    db: Db,
    checkpoint_key: Arc<Ed25519KeyPair>,
    /// Wakes this process's watchers when an entry is recorded.
    recorded: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
}

/// How often watchers read again without being woken: entries written by other replicas, by
/// objections and by merges.
const WATCH_POLL: Duration = Duration::from_secs(1);
/// Entries read per query while watching.
const WATCH_BATCH: usize = 500;

impl Ledger {
    pub fn new(db: Db, checkpoint_key: Arc<Ed25519KeyPair>, shutdown: CancellationToken) -> Self {
        Self {
            db,
            checkpoint_key,
            recorded: Arc::default(),
            shutdown,
        }
    }

    /// Every entry after `cursor` (of `purposes`, all when empty) in commit order, then new
    /// ones as they are recorded, until the caller goes away or the service shuts down.
    pub fn watch(
        &self,
        cursor: FeedCursor,
        purposes: Vec<String>,
    ) -> impl Stream<Item = Result<(FeedCursor, EntryRow), tonic::Status>> + Send + use<> {
        let options = FollowOptions {
            signal: self.recorded.clone(),
            poll_interval: WATCH_POLL,
            gather: Duration::ZERO,
            shutdown: self.shutdown.clone(),
            batch: WATCH_BATCH,
        };
        let db = self.db.clone();
        follow(cursor, options, move |after, limit| {
            let (db, purposes) = (db.clone(), purposes.clone());
            async move {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let entries = db
                    .run(move |conn| {
                        Ok::<_, ConsentError>(store::list_feed_after(
                            conn, after, &purposes, limit,
                        )?)
                    })
                    .await?;
                Ok(entries
                    .into_iter()
                    .map(|(cursor, entry)| (cursor, (cursor, entry)))
                    .collect())
            }
        })
    }

    /// Signs every chain's head now, unless none moved since the latest checkpoint.
    pub async fn checkpoint(&self) -> Result<(Option<CheckpointRow>, bool), ConsentError> {
        let key = self.checkpoint_key.clone();
        self.db.run(move |conn| checkpoint::take(conn, &key)).await
    }

    /// The public key that verifies checkpoint signatures.
    pub fn checkpoint_public_key(&self) -> Vec<u8> {
        self.checkpoint_key.public_key().as_ref().to_vec()
    }

    /// Appends `new` to its subject's chain (the survivor's, for a subject merged into
    /// another); effective as soon as this returns.
    pub async fn record(
        &self,
        caller: Caller,
        mut new: NewDecision,
    ) -> Result<EntryRow, ConsentError> {
        let entry = self
            .db
            .run(move |conn| {
                new.subject_id = follow::survivor(conn, new.subject_id)?;
                append(conn, &caller, &new)
            })
            .await?;
        self.recorded.notify_waiters();
        Ok(entry)
    }

    /// The decision in force for each purpose and channel the subject was asked about.
    /// A subject merged into another answers with the survivor's.
    pub async fn state(&self, subject: Uuid) -> Result<Vec<State>, ConsentError> {
        let now = Utc::now();
        let rows = self
            .db
            .run(move |conn| {
                let subject = follow::survivor(conn, subject)?;
                Ok::<_, ConsentError>(store::list_latest_by_subject(conn, subject)?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|entry| State {
                expired: entry.decision == Decision::Granted.as_str()
                    && entry.expires_at.is_some_and(|at| at <= now),
                entry,
            })
            .collect())
    }

    /// For each of `subjects`, in order: whether it may be processed for the purpose on the
    /// channel, and why. A subject merged into another answers with the survivor's.
    pub async fn check(
        &self,
        purpose_key: String,
        channel: Channel,
        subjects: Vec<Uuid>,
    ) -> Result<Vec<(Uuid, Reason)>, ConsentError> {
        self.db
            .run(move |conn| {
                let purpose = purposes::load(conn, &purpose_key)?
                    .ok_or_else(|| ConsentError::invalid("purpose_key", "no such purpose"))?
                    .purpose;
                if !purpose.channels.contains(&channel) {
                    return Err(ConsentError::invalid(
                        "channel",
                        format!("not a channel of the purpose {purpose_key:?}"),
                    ));
                }
                let asked = subjects;
                let survivors = follow_store::list_survivors(conn, &asked)?;
                let effective = |s: &Uuid| survivors.get(s).copied().unwrap_or(*s);
                let subjects: Vec<Uuid> = asked.iter().map(effective).collect();
                // Each latest decision: when, and whether a partner recorded it.
                let mut recorded: HashMap<Uuid, (Decision, DateTime<Utc>, bool)> = HashMap::new();
                let latest: HashMap<Uuid, (Decision, Option<DateTime<Utc>>)> = if purpose
                    .lawful_basis
                    .takes_decisions()
                {
                    store::list_latest_decisions(conn, &purpose_key, channel.as_str(), &subjects)?
                        .into_iter()
                        .map(|(subject, decision, expiry, at, by)| {
                            let decision =
                                Decision::parse(&decision).ok_or(ConsentError::Corrupt)?;
                            recorded.insert(subject, (decision, at, by == PARTNER_KIND));
                            Ok((subject, (decision, expiry)))
                        })
                        .collect::<Result<_, ConsentError>>()?
                } else {
                    HashMap::new()
                };
                let restricted: std::collections::HashSet<Uuid> =
                    privacy_store::list_restricted(conn, &subjects)?
                        .into_iter()
                        .collect();
                // Soft opt-in is direct marketing whatever the purpose says.
                let objected =
                    if purpose.direct_marketing || purpose.lawful_basis == LawfulBasis::SoftOptIn {
                        objection::list_objected(conn, &subjects)?
                    } else {
                        HashMap::new()
                    };
                let purchasers = if purpose.lawful_basis == LawfulBasis::SoftOptIn {
                    follow_store::list_purchasers(conn, &subjects)?
                } else {
                    std::collections::HashSet::new()
                };
                let now = Utc::now();
                Ok(asked
                    .iter()
                    .map(|asked| {
                        let s = &effective(asked);
                        // An objection stands until the subject grants the purpose again:
                        // a grant a partner relays does not lift it (Art. 21(3)).
                        let regranted = |objected_at: &DateTime<Utc>| {
                            recorded.get(s).is_some_and(|(decision, at, by_partner)| {
                                *decision == Decision::Granted && at > objected_at && !by_partner
                            })
                        };
                        let why = if restricted.contains(s) {
                            Reason::Restricted
                        } else if objected.get(s).is_some_and(|at| !regranted(at)) {
                            Reason::Objected
                        } else {
                            reason(
                                purpose.lawful_basis,
                                latest.get(s).copied(),
                                purchasers.contains(s),
                                now,
                            )
                        };
                        (*asked, why)
                    })
                    .collect())
            })
            .await
    }

    pub async fn history(
        &self,
        subject: Uuid,
        page: Page,
    ) -> Result<(Vec<EntryRow>, PageResponse), ConsentError> {
        self.db
            .run(move |conn| {
                let rows = store::list_by_subject_after(conn, subject, page.after, page.limit())?;
                Ok(page.finish(rows, |row| row.id))
            })
            .await
    }

    /// Recomputes every chain (or `only` the subject's), then checks the signed checkpoints
    /// against them; stops at the first break.
    pub async fn verify(&self, only: Option<Uuid>) -> Result<Verification, ConsentError> {
        let public_key = self.checkpoint_public_key();
        self.db
            .run(move |conn| {
                let mut found = verify_chains(conn, only)?;
                if found.broken.is_some() {
                    return Ok(found);
                }
                let broken = match only {
                    Some(subject) => checkpoint::verify_subject(conn, subject)?,
                    None => {
                        let (checked, broken) = checkpoint::verify(conn, &public_key)?;
                        found.checkpoints_checked = checked;
                        broken
                    }
                };
                found.broken = broken.map(|b| Broken {
                    entry_id: b.entry_id,
                    subject_id: b.subject_id,
                    sequence: b.sequence,
                    problem: b.problem,
                });
                Ok(found)
            })
            .await
    }
}

/// Recomputes every chain (or `only` the subject's), stopping at the first broken entry.
fn verify_chains(
    conn: &mut PgConnection,
    only: Option<Uuid>,
) -> Result<Verification, ConsentError> {
    let mut found = Verification::default();
    let mut after: Option<(Uuid, i64)> = None;
    let mut previous: Option<(Uuid, i64, Vec<u8>)> = None;
    loop {
        let rows = store::list_in_chain_order(conn, after, only, VERIFY_BATCH)?;
        let Some(last) = rows.last() else {
            return Ok(found);
        };
        after = Some((last.subject_id, last.sequence));
        for row in rows {
            found.entries_checked += 1;
            if let Some(problem) = check_link(previous.as_ref(), &row) {
                found.broken = Some(Broken {
                    entry_id: Some(row.id),
                    subject_id: row.subject_id,
                    sequence: row.sequence,
                    problem,
                });
                return Ok(found);
            }
            previous = Some((row.subject_id, row.sequence, row.hash));
        }
    }
}

/// What is wrong with `row` given the entry before it in chain order, if anything.
fn check_link(previous: Option<&(Uuid, i64, Vec<u8>)>, row: &EntryRow) -> Option<&'static str> {
    let (expected_sequence, expected_previous): (i64, &[u8]) = match previous {
        Some((subject, sequence, hash)) if *subject == row.subject_id => (sequence + 1, hash),
        _ => (1, &GENESIS),
    };
    if row.sequence != expected_sequence {
        return Some("an entry of the subject's chain is missing before it");
    }
    if row.previous_hash != expected_previous {
        return Some("its previous hash is not the hash of the subject's entry before it");
    }
    if content(row).hash().as_slice() != row.hash.as_slice() {
        return Some("its hash does not match its contents");
    }
    None
}

fn content(row: &EntryRow) -> EntryContent<'_> {
    EntryContent {
        id: row.id,
        subject_id: row.subject_id,
        sequence: row.sequence,
        purpose_key: &row.purpose_key,
        decision: &row.decision,
        channel: &row.channel,
        collection_point: &row.collection_point,
        notice_version: row.notice_version.as_deref(),
        ip_hash: row.ip_hash.as_deref(),
        user_agent: row.user_agent.as_deref(),
        form_id: row.form_id.as_deref(),
        expires_at: row.expires_at,
        recorded_by: &row.recorded_by,
        recorded_by_kind: &row.recorded_by_kind,
        recorded_at: row.recorded_at,
        previous_hash: &row.previous_hash,
    }
}

/// Checks `new` against its purpose and appends it after the subject's last entry.
pub fn append(
    conn: &mut PgConnection,
    caller: &Caller,
    new: &NewDecision,
) -> Result<EntryRow, ConsentError> {
    let purpose = purposes::load(conn, &new.purpose_key)?
        .ok_or_else(|| ConsentError::invalid("purpose_key", "no such purpose"))?
        .purpose;
    if !purpose.lawful_basis.takes_decisions() {
        return Err(ConsentError::invalid(
            "purpose_key",
            format!(
                "the purpose rests on {}: there is no consent to record (objections are data subject requests)",
                purpose.lawful_basis.as_str()
            ),
        ));
    }
    if !purpose.channels.contains(&new.channel) {
        return Err(ConsentError::invalid(
            "channel",
            format!("not a channel of the purpose {:?}", purpose.key),
        ));
    }
    match (&new.notice_version, new.decision) {
        (None, Decision::Granted) => {
            return Err(ConsentError::invalid(
                "notice_version",
                "a grant names the notice the subject saw",
            ));
        }
        (Some(version), _) => {
            if purpose_store::find_notice(conn, &purpose.key, version)?.is_none() {
                return Err(ConsentError::invalid(
                    "notice_version",
                    "not a published notice of the purpose",
                ));
            }
        }
        (None, Decision::Withdrawn) => {}
    }
    // One writer at a time per subject: each appends after the entry the previous one wrote.
    store::lock_subject(conn, new.subject_id)?;
    let (sequence, previous_hash) = match store::find_last(conn, new.subject_id)? {
        Some((sequence, hash)) => (sequence + 1, hash),
        None => (1, GENESIS.to_vec()),
    };
    let recorded_by_kind = caller.principal.kind.as_str();
    let mut row = EntryRow {
        id: Uuid::now_v7(),
        subject_id: new.subject_id,
        sequence,
        purpose_key: new.purpose_key.clone(),
        decision: new.decision.as_str().to_owned(),
        channel: new.channel.as_str().to_owned(),
        collection_point: new.collection_point.clone(),
        notice_version: new.notice_version.clone(),
        ip_hash: new.ip_hash.clone(),
        user_agent: new.user_agent.clone(),
        form_id: new.form_id.clone(),
        expires_at: new.expires_at.map(to_micros),
        recorded_by: caller.principal.subject.clone(),
        recorded_by_kind: recorded_by_kind.to_owned(),
        recorded_at: to_micros(Utc::now()),
        previous_hash,
        hash: Vec::new(),
    };
    row.hash = content(&row).hash().to_vec();
    store::insert(conn, &row)?;
    // Debug, not info: the ledger is the record of every decision, and a bulk import would
    // otherwise write a log line per decision.
    tracing::debug!(entry.id = %row.id, purpose = %row.purpose_key, decision = %row.decision, "consent recorded");
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_the_basis_and_the_latest_decision() {
        let now = Utc::now();
        let past = Some(now - chrono::Duration::seconds(1));
        let future = Some(now + chrono::Duration::days(1));
        let cases = [
            (LawfulBasis::Consent, None, Reason::NeverAsked),
            (
                LawfulBasis::Consent,
                Some((Decision::Granted, None)),
                Reason::Granted,
            ),
            (
                LawfulBasis::Consent,
                Some((Decision::Granted, future)),
                Reason::Granted,
            ),
            (
                LawfulBasis::Consent,
                Some((Decision::Granted, past)),
                Reason::Expired,
            ),
            (
                LawfulBasis::Consent,
                Some((Decision::Withdrawn, None)),
                Reason::Withdrawn,
            ),
            (
                LawfulBasis::SoftOptIn,
                Some((Decision::Withdrawn, None)),
                Reason::Withdrawn,
            ),
            (
                LawfulBasis::Contract,
                Some((Decision::Withdrawn, None)),
                Reason::Contract,
            ),
            (LawfulBasis::LegalObligation, None, Reason::OtherLawfulBasis),
        ];
        for (basis, latest, expected) in cases {
            assert_eq!(
                reason(basis, latest, false, now),
                expected,
                "{basis:?} {latest:?}"
            );
        }
        assert!(Reason::Granted.allowed() && !Reason::Expired.allowed());
        // Soft opt-in: an existing customer who said nothing; a withdrawal still ends it.
        let soft = LawfulBasis::SoftOptIn;
        assert_eq!(reason(soft, None, true, now), Reason::SoftOptIn);
        assert_eq!(reason(soft, None, false, now), Reason::NeverAsked);
        assert_eq!(
            reason(soft, Some((Decision::Withdrawn, None)), true, now),
            Reason::Withdrawn
        );
        assert!(Reason::SoftOptIn.allowed());
    }
}
