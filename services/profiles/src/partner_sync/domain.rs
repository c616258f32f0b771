//! What partners may do: sync their customers by their own reference, and see subjects only as
//! far as those subjects agreed to share with them, each disclosure recorded (GDPR Art. 19).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use diesel::PgConnection;
use ecrm_crypto::BlindIndexKey;
use ecrm_platform::Db;
use uuid::Uuid;

use crate::access_log::{self, Action};
use crate::attributes::domain::AttributeChange;
use crate::caller::Caller;
use crate::changes::domain::{ChangeKind, ChangeSignal, Cursor};
use crate::changes::store as change_store;
use crate::disclosures;
use crate::error::ProfilesError;
use crate::identifiers::domain::{Identifier, IdentifierKind, NewIdentifier};
use crate::identifiers::store as identifier_store;
use crate::keys::SubjectKeys;
use crate::notices::{self, NoticeRow};
use crate::profiles::domain::{
    Overwrite, ResolvedWrite, SubjectLookup, check_changes, create_subject, owners, resolve,
    run_resolving,
};
use crate::profiles::store::{self as profile_store, ProfileRow};
use crate::profiles::view::{self, Profile};
use crate::sharing::{SharedFields, SharingPolicy, identifier_field};

/// Changes after which a subject's shared data may differ: a restriction lifted makes it
/// shareable again, one set makes it unshareable, so both are read.
const SHARED_KINDS: [&str; 4] = [
    ChangeKind::Created.as_str(),
    ChangeKind::Updated.as_str(),
    ChangeKind::Merged.as_str(),
    ChangeKind::Restricted.as_str(),
];
/// What a disclosure always includes: the subject's id.
const SUBJECT_ID_FIELD: &str = "subject_id";

/// A partner's upsert of one customer.
#[derive(Debug, Clone)]
pub struct PartnerUpsert {
    pub external_id: String,
    /// Other identifiers the partner knows; never partner references.
    pub identifiers: Vec<NewIdentifier>,
    pub changes: Vec<AttributeChange>,
}

/// One subject as shared with a partner.
#[derive(Debug, Clone)]
pub struct SharedProfile {
    pub profile: Profile,
    /// The partner's own reference for the subject, when it synced one.
    pub external_id: Option<String>,
}

#[derive(Debug)]
pub struct PartnerSync {
    db: Db,
    keys: SubjectKeys,
    lookup_key: BlindIndexKey,
    signal: ChangeSignal,
    sharing: Arc<dyn SharingPolicy>,
}

impl PartnerSync {
    pub fn new(
        db: Db,
        keys: SubjectKeys,
        lookup_key: BlindIndexKey,
        signal: ChangeSignal,
        sharing: Arc<dyn SharingPolicy>,
    ) -> Self {
        Self {
            db,
            keys,
            lookup_key,
            signal,
            sharing,
        }
    }

    /// Creates or updates the profile the partner's reference names; identifiers that already
    /// belong to a profile attach the reference to it. Returns the subject.
    pub async fn upsert(
        &self,
        caller: Caller,
        command: PartnerUpsert,
    ) -> Result<Uuid, ProfilesError> {
        let partner = caller.require_partner()?;
        let reference = Identifier::new(
            IdentifierKind::PartnerReference,
            &command.external_id,
            &partner,
            "",
        )
        .map_err(|_| {
            ProfilesError::invalid("external_id", "1 to 128 characters, no control characters")
        })?;
        let mut identifiers = vec![NewIdentifier {
            identifier: reference,
            verified_at: None,
            verification_method: None,
        }];
        identifiers.extend(command.identifiers);
        let changes = command.changes;
        let source = format!("partner.{partner}");
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        let subject = run_resolving(&self.db, move |conn| {
            check_changes(conn, &changes)?;
            let owners = owners(conn, &lookup_key, &identifiers)?;
            let (subject, key, created) = match owners.len() {
                0 => {
                    let (subject, key) = create_subject(conn, &keys)?;
                    (subject, key, true)
                }
                1 => {
                    let subject = owners.first().copied().ok_or(ProfilesError::Corrupt)?;
                    (subject, keys.get(conn, subject)?, false)
                }
                // A partner never learns which profiles those are, nor merges them.
                _ => return Err(conflict()),
            };
            ResolvedWrite {
                subject,
                key: &key,
                created,
                identifiers: &identifiers,
                changes: &changes,
                source: &source,
                overwrite: Overwrite::OwnOrUnknown,
            }
            .store(conn, &lookup_key, &caller)
            // Another writer attached one of the identifiers meanwhile: that error names its
            // profile, which a partner must not learn.
            .map_err(|error| match error {
                ProfilesError::AlreadyExists(_) => conflict(),
                other => other,
            })?;
            Ok(subject)
        })
        .await?;
        self.signal.notify_waiters();
        Ok(subject)
    }

    /// A subject as the partner may see it: its own references when it synced the subject, and
    /// what the subject shares with it. A subject it neither synced nor was shared is NOT_FOUND.
    pub async fn get(
        &self,
        caller: Caller,
        lookup: SubjectLookup,
    ) -> Result<Profile, ProfilesError> {
        let partner = caller.require_partner()?;
        caller.read_purpose()?;
        if let SubjectLookup::Identifier(identifier) = &lookup
            && (identifier.kind != IdentifierKind::PartnerReference
                || identifier.partner_id.as_deref() != Some(partner.as_str()))
        {
            return Err(ProfilesError::invalid(
                "subject.identifier",
                "partners look customers up by subject id or by their own partner reference",
            ));
        }
        let lookup_key = self.lookup_key.clone();
        let owner = partner.clone();
        let (row, synced) = self
            .db
            .run(move |conn| {
                let row = resolve(conn, &lookup_key, &lookup)?
                    .ok_or(ProfilesError::NotFound("profile"))?;
                let synced = identifier_store::partner_has_subject(conn, &owner, row.subject_id)?;
                Ok::<_, ProfilesError>((row, synced))
            })
            .await?;
        let subject = row.subject_id;
        let fields = self
            .shared_fields(&partner, vec![row])
            .await?
            .remove(&subject)
            .unwrap_or_default();
        if !synced && fields.is_empty() {
            return Err(ProfilesError::NotFound("profile"));
        }
        let keys = self.keys.clone();
        let shared = self
            .db
            .run(move |conn| {
                let wanted = vec![(subject, fields)];
                load_shared(conn, &keys, &caller, &partner, wanted, synced)
            })
            .await?;
        shared
            .into_iter()
            .next()
            .map(|shared| shared.profile)
            .ok_or(ProfilesError::NotFound("profile"))
    }

    /// Subjects changed after `after` that share data with the calling partner, with what they
    /// share; reads at most `limit` changes. Returns the cursor after them, which moves on even
    /// when nothing was shared.
    pub async fn pull(
        &self,
        caller: Caller,
        after: Cursor,
        limit: i64,
    ) -> Result<(Vec<SharedProfile>, Cursor), ProfilesError> {
        let partner = caller.require_partner()?;
        let caller = caller.sharing();
        let (rows, next) = self
            .db
            .run(move |conn| {
                let changes =
                    change_store::list_after(conn, after.tx, after.seq, &SHARED_KINDS, limit)?;
                let next = changes.last().map_or(after, |c| Cursor {
                    tx: c.tx,
                    seq: c.seq,
                });
                let mut seen = HashSet::new();
                let subjects: Vec<Uuid> = changes
                    .iter()
                    .map(|c| c.subject_id)
                    .filter(|s| seen.insert(*s))
                    .collect();
                let mut rows: HashMap<Uuid, ProfileRow> =
                    profile_store::find_many(conn, &subjects)?
                        .into_iter()
                        .map(|row| (row.subject_id, row))
                        .collect();
                // In change order, so a partner reads subjects in the order they changed.
                let rows: Vec<ProfileRow> =
                    subjects.iter().filter_map(|s| rows.remove(s)).collect();
                Ok::<_, ProfilesError>((rows, next))
            })
            .await?;
        let order: Vec<Uuid> = rows.iter().map(|r| r.subject_id).collect();
        let mut fields = self.shared_fields(&partner, rows).await?;
        let wanted: Vec<(Uuid, SharedFields)> = order
            .into_iter()
            .filter_map(|s| fields.remove(&s).map(|f| (s, f)))
            .collect();
        if wanted.is_empty() {
            return Ok((Vec::new(), next));
        }
        let keys = self.keys.clone();
        let shared = self
            .db
            .run(move |conn| load_shared(conn, &keys, &caller, &partner, wanted, false))
            .await?;
        Ok((shared, next))
    }

    /// The calling partner's notices not acknowledged yet, oldest first (Art. 19).
    pub async fn pending_notices(
        &self,
        caller: Caller,
        limit: i64,
    ) -> Result<Vec<NoticeRow>, ProfilesError> {
        let partner = caller.require_partner()?;
        self.db
            .run(move |conn| Ok::<_, ProfilesError>(notices::pending(conn, &partner, limit)?))
            .await
    }

    /// Records that the calling partner acted on its notices `ids`; returns how many were
    /// pending. An id that is not the partner's notice is NOT_FOUND, and nothing is recorded.
    pub async fn acknowledge_notices(
        &self,
        caller: Caller,
        ids: Vec<Uuid>,
    ) -> Result<usize, ProfilesError> {
        let partner = caller.require_partner()?;
        self.db
            .run(move |conn| {
                let wanted = i64::try_from(ids.len()).unwrap_or(i64::MAX);
                if notices::count_owned(conn, &partner, &ids)? != wanted {
                    return Err(ProfilesError::NotFound("notice"));
                }
                Ok(notices::acknowledge(conn, &partner, &ids)?)
            })
            .await
    }

    /// What each of the live, unrestricted `rows` shares with `partner`; subjects sharing
    /// nothing are left out.
    async fn shared_fields(
        &self,
        partner: &str,
        rows: Vec<ProfileRow>,
    ) -> Result<HashMap<Uuid, SharedFields>, ProfilesError> {
        let subjects: Vec<Uuid> = rows
            .into_iter()
            .filter(|row| row.is_live() && row.restricted_at.is_none())
            .map(|row| row.subject_id)
            .collect();
        if subjects.is_empty() {
            return Ok(HashMap::new());
        }
        let mut shared = self.sharing.shared(partner, &subjects).await?;
        shared.retain(|subject, fields| subjects.contains(subject) && !fields.is_empty());
        Ok(shared)
    }
}

/// What a partner hears when its identifiers name more than one customer.
fn conflict() -> ProfilesError {
    ProfilesError::FailedPrecondition(
        "the identifiers belong to more than one customer: send only identifiers of this customer"
            .to_owned(),
    )
}

/// Loads each subject still live, keeps what the partner may see under its fields (none once
/// restricted), and records the read and every disclosure in this transaction. A subject that
/// shares nothing (any more) is left out unless `keep_unshared` (the partner synced it).
fn load_shared(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    caller: &Caller,
    partner: &str,
    wanted: Vec<(Uuid, SharedFields)>,
    keep_unshared: bool,
) -> Result<Vec<SharedProfile>, ProfilesError> {
    let subjects: Vec<Uuid> = wanted.iter().map(|(s, _)| *s).collect();
    let mut rows: HashMap<Uuid, ProfileRow> = profile_store::find_many(conn, &subjects)?
        .into_iter()
        .filter(ProfileRow::is_live)
        .map(|row| (row.subject_id, row))
        .collect();
    let mut out = Vec::with_capacity(wanted.len());
    for (subject, fields) in wanted {
        let Some(row) = rows.remove(&subject) else {
            continue;
        };
        let fields = if row.restricted_at.is_some() {
            SharedFields::default()
        } else {
            fields
        };
        if fields.is_empty() && !keep_unshared {
            continue;
        }
        let profile = view::load_one(conn, keys, row)?;
        let (profile, external_id, disclosed) = shared_view(profile, partner, &fields);
        // Being shared discloses the subject's id even when the covered fields are empty.
        if !fields.is_empty() {
            let names: Vec<&str> = std::iter::once(SUBJECT_ID_FIELD)
                .chain(disclosed.iter().map(String::as_str))
                .collect();
            disclosures::record(conn, subject, partner, &names)?;
        }
        out.push(SharedProfile {
            profile,
            external_id,
        });
    }
    let read: Vec<Uuid> = out.iter().map(|s| s.profile.subject_id).collect();
    access_log::record(conn, caller, Action::Read, &read)?;
    Ok(out)
}

/// `profile` as `partner` may see it under `fields`, the partner's own reference, and the
/// names of the fields disclosed.
fn shared_view(
    mut profile: Profile,
    partner: &str,
    fields: &SharedFields,
) -> (Profile, Option<String>, Vec<String>) {
    profile
        .identifiers
        .retain(|identifier| fields.covers_identifier(partner, identifier));
    // How and by whom another source's identifier was verified or sent is not the partner's.
    for shared in &mut profile.identifiers {
        if identifier_field(&shared.identifier).is_some() {
            shared.verified_at = None;
            shared.verification_method = None;
            shared.source.clear();
        }
    }
    fields.filter_attributes(&mut profile.attributes);
    profile.merged_subject_ids.clear();
    profile.restricted = false;
    let external_id = profile
        .identifiers
        .iter()
        .find(|i| i.identifier.kind == IdentifierKind::PartnerReference)
        .map(|i| i.identifier.value.expose().clone());
    let mut disclosed: Vec<String> = profile
        .attributes
        .keys()
        .map(ToString::to_string)
        .chain(
            profile
                .identifiers
                .iter()
                .filter_map(|i| identifier_field(&i.identifier)),
        )
        .collect();
    disclosed.sort();
    disclosed.dedup();
    (profile, external_id, disclosed)
}
