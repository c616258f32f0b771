//! Signed checkpoints: the heads of every chain at a moment, in a digest signed with Ed25519
//! and chained to the checkpoint before. What a checkpoint signed must stay in the ledger: a
//! removed tail, a removed chain or a rewritten entry (even with every hash recomputed) no
//! longer matches a signed head.

use std::collections::BTreeMap;

use chrono::Utc;
use diesel::PgConnection;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use uuid::Uuid;

use super::chain::to_micros;
use super::checkpoint_store::{self as store, CheckpointRow, Head};
use crate::error::ConsentError;

/// Names the forms below, so a future form never verifies like these.
const HEADS_FORM: &str = "ecrm.consent.checkpoint_heads.v1";
const MESSAGE_FORM: &str = "ecrm.consent.checkpoint.v1";

/// Heads by subject: last sequence number and hash.
type Heads = BTreeMap<Uuid, (i64, Vec<u8>)>;

/// SHA-256 over every head, in subject order.
fn digest(heads: &Heads) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(HEADS_FORM.as_bytes());
    for (subject, (sequence, hash)) in heads {
        context.update(subject.as_bytes());
        context.update(&sequence.to_be_bytes());
        context.update(&(hash.len() as u64).to_be_bytes());
        context.update(hash);
    }
    context.finish().as_ref().to_vec()
}

/// What is signed: the checkpoint's fields and the previous checkpoint's signature.
fn message(row: &CheckpointRow, previous_signature: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for part in [
        MESSAGE_FORM.as_bytes(),
        row.id.as_bytes(),
        &row.taken_at.timestamp_micros().to_be_bytes(),
        row.previous_id.unwrap_or_default().as_bytes(),
        &row.subjects.to_be_bytes(),
        &row.heads_digest,
        previous_signature,
    ] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Takes a checkpoint of every chain's head, unless none moved since the latest one. Returns
/// the latest checkpoint and whether it is new.
pub fn take(
    conn: &mut PgConnection,
    key: &Ed25519KeyPair,
) -> Result<(Option<CheckpointRow>, bool), ConsentError> {
    store::lock_checkpoints(conn)?;
    let previous = store::find_latest(conn)?;
    let signed: Heads = store::list_signed_heads(conn, None)?
        .into_iter()
        .map(|(subject, sequence, hash)| (subject, (sequence, hash)))
        .collect();
    let current: Heads = store::list_ledger_heads(conn)?
        .into_iter()
        .map(|(subject, sequence, hash)| (subject, (sequence, hash)))
        .collect();
    // Never sign over tampering: every head signed before must still be in the ledger.
    for (subject, (sequence, hash)) in &signed {
        let intact = match current.get(subject) {
            None => false,
            Some((now, now_hash)) if now == sequence => now_hash == hash,
            Some((now, _)) if now < sequence => false,
            Some(_) => check_head(conn, *subject, *sequence, hash)?.is_none(),
        };
        if !intact {
            tracing::error!(subject.id = %subject, sequence, "the ledger no longer holds a signed head; refusing to sign a checkpoint");
            return Err(ConsentError::FailedPrecondition(
                "the ledger no longer matches its last signed checkpoint: run VerifyLedger"
                    .to_owned(),
            ));
        }
    }
    let moved: Vec<Head> = current
        .iter()
        .filter(|(subject, head)| signed.get(subject) != Some(head))
        .map(|(subject, (sequence, hash))| (*subject, *sequence, hash.clone()))
        .collect();
    if moved.is_empty() {
        return Ok((previous, false));
    }
    // The chains checkpoints already hold, moved forward where they moved.
    let mut heads = signed;
    heads.extend(current);
    let mut row = CheckpointRow {
        id: Uuid::now_v7(),
        taken_at: to_micros(Utc::now()),
        previous_id: previous.as_ref().map(|p| p.id),
        subjects: i64::try_from(heads.len()).unwrap_or(i64::MAX),
        heads_digest: digest(&heads),
        public_key: key.public_key().as_ref().to_vec(),
        signature: Vec::new(),
    };
    let previous_signature = previous
        .as_ref()
        .map(|p| p.signature.clone())
        .unwrap_or_default();
    row.signature = key
        .sign(&message(&row, &previous_signature))
        .as_ref()
        .to_vec();
    store::insert(conn, &row, &moved)?;
    tracing::info!(checkpoint.id = %row.id, subjects = row.subjects, moved = moved.len(), "ledger checkpoint signed");
    Ok((Some(row), true))
}

/// Where the ledger and its checkpoints disagree.
#[derive(Debug, Clone)]
pub struct Break {
    pub subject_id: Uuid,
    pub sequence: i64,
    /// The entry now at that place, if any.
    pub entry_id: Option<Uuid>,
    pub problem: &'static str,
}

/// Checks every checkpoint's digest, signature (by `public_key`) and link to the one before,
/// then that the ledger still holds each head they signed. Returns the checkpoints checked and
/// the first break found.
pub fn verify(
    conn: &mut PgConnection,
    public_key: &[u8],
) -> Result<(u64, Option<Break>), ConsentError> {
    let mut heads = Heads::new();
    let mut previous: Option<CheckpointRow> = None;
    let mut checked = 0;
    let whole = |problem| Break {
        subject_id: Uuid::nil(),
        sequence: 0,
        entry_id: None,
        problem,
    };
    for row in store::list_checkpoints(conn)? {
        checked += 1;
        for (subject, sequence, hash) in store::list_heads(conn, row.id)? {
            heads.insert(subject, (sequence, hash));
        }
        if row.previous_id != previous.as_ref().map(|p| p.id) {
            return Ok((
                checked,
                Some(whole("a signed checkpoint is missing before another")),
            ));
        }
        if digest(&heads) != row.heads_digest
            || row.subjects != i64::try_from(heads.len()).unwrap_or(i64::MAX)
        {
            return Ok((
                checked,
                Some(whole("a checkpoint's heads do not match its signed digest")),
            ));
        }
        let previous_signature = previous
            .as_ref()
            .map(|p| p.signature.clone())
            .unwrap_or_default();
        let signed = row.public_key == public_key
            && UnparsedPublicKey::new(&ED25519, public_key)
                .verify(&message(&row, &previous_signature), &row.signature)
                .is_ok();
        if !signed {
            return Ok((
                checked,
                Some(whole(
                    "a checkpoint's signature does not verify with the service's key",
                )),
            ));
        }
        previous = Some(row);
    }
    for (subject, (sequence, hash)) in heads {
        if let Some(found) = check_head(conn, subject, sequence, &hash)? {
            return Ok((checked, Some(found)));
        }
    }
    Ok((checked, None))
}

/// Whether the ledger still holds `subject`'s latest signed head.
pub fn verify_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> Result<Option<Break>, ConsentError> {
    for (subject, sequence, hash) in store::list_signed_heads(conn, Some(subject))? {
        if let Some(found) = check_head(conn, subject, sequence, &hash)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn check_head(
    conn: &mut PgConnection,
    subject: Uuid,
    sequence: i64,
    hash: &[u8],
) -> Result<Option<Break>, ConsentError> {
    Ok(match store::find_entry_hash(conn, subject, sequence)? {
        Some((_, found)) if found == hash => None,
        Some((id, _)) => Some(Break {
            subject_id: subject,
            sequence,
            entry_id: Some(id),
            problem: "the entry differs from the one a signed checkpoint holds",
        }),
        None => Some(Break {
            subject_id: subject,
            sequence,
            entry_id: None,
            problem: "an entry a signed checkpoint holds is gone from the ledger",
        }),
    })
}
