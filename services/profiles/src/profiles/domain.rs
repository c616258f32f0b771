//! Identity resolution and the rules of reading, changing and merging profiles.

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::PgConnection;
use ecrm_crypto::{BlindIndexKey, DataKey};
use ecrm_platform::paging::Page;
use ecrm_platform::{Db, DbError};
use uuid::Uuid;

use super::contacts::{self, Contact};
use super::store::{self, ProfileRow};
use super::view::{self, IDENTIFIER_TABLE, MERGE_TABLE, Profile};
use crate::access_log::{self, Action};
use crate::attributes::domain::{AttributeChange, Definition, ValueType, check_change};
use crate::attributes::store as attribute_store;
use crate::caller::{Caller, Purpose};
use crate::changes::domain::{ChangeKind, ChangeSignal, NewChange};
use crate::changes::store as change_store;
use crate::disclosures;
use crate::error::ProfilesError;
use crate::identifiers::domain::{Identifier, NewIdentifier};
use crate::identifiers::store::{self as identifier_store, NewIdentifierRow};
use crate::interactions::store as interaction_store;
use crate::keys::{self, SubjectKeys};

const MAX_SOURCE_CHARS: usize = 64;
const MAX_REASON_CHARS: usize = 500;
/// The unique index that makes an identifier name at most one profile.
const LOOKUP_CONSTRAINT: &str = "identifiers_lookup_key";
/// Two writers adding the same new identifier at once: the loser retries and finds it.
const RESOLUTION_ATTEMPTS: usize = 3;

/// Runs `work` in a transaction, again when a concurrent writer added the same new identifier
/// first (the retry then finds it).
pub async fn run_resolving<T, F>(db: &Db, work: F) -> Result<T, ProfilesError>
where
    F: Fn(&mut PgConnection) -> Result<T, ProfilesError> + Clone + Send + 'static,
    T: Send + 'static,
{
    let mut attempt = 1;
    loop {
        match db.run(work.clone()).await {
            Err(ProfilesError::Db(DbError::UniqueViolation { constraint }))
                if constraint == LOOKUP_CONSTRAINT && attempt < RESOLUTION_ATTEMPTS =>
            {
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Where data came from: 1 to 64 of a-z, 0-9, `_`, `-`, `.`.
pub fn check_source(field: &str, source: &str) -> Result<String, ProfilesError> {
    let valid = !source.is_empty()
        && source.len() <= MAX_SOURCE_CHARS
        && source.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if valid {
        Ok(source.to_owned())
    } else {
        Err(ProfilesError::invalid(
            field,
            format!("1 to {MAX_SOURCE_CHARS} of a-z, 0-9, '_', '-', '.', e.g. \"web_shop\""),
        ))
    }
}

/// A customer named by subject id or by identifier.
#[derive(Debug, Clone)]
pub enum SubjectLookup {
    Id(Uuid),
    Identifier(Identifier),
}

#[derive(Debug, Clone)]
pub struct UpsertCommand {
    pub identifiers: Vec<NewIdentifier>,
    pub changes: Vec<AttributeChange>,
    pub source: String,
    pub merge_if_needed: bool,
}

#[derive(Debug, Clone)]
pub struct UpsertOutcome {
    pub profile: Profile,
    pub created: bool,
    pub merged: Vec<Uuid>,
}

/// The profiles domain: every operation is one transaction that also writes the access log and
/// the change feed.
#[derive(Debug)]
pub struct Profiles {
    db: Db,
    keys: SubjectKeys,
    lookup_key: BlindIndexKey,
    signal: ChangeSignal,
}

impl Profiles {
    pub fn new(db: Db, keys: SubjectKeys, lookup_key: BlindIndexKey, signal: ChangeSignal) -> Self {
        Self {
            db,
            keys,
            lookup_key,
            signal,
        }
    }

    /// Runs `work` with [`run_resolving`], then wakes the feed's readers.
    async fn write<T, F>(&self, work: F) -> Result<T, ProfilesError>
    where
        F: Fn(&mut PgConnection) -> Result<T, ProfilesError> + Clone + Send + 'static,
        T: Send + 'static,
    {
        let result = run_resolving(&self.db, work).await;
        if result.is_ok() {
            self.signal.notify_waiters();
        }
        result
    }

    pub async fn upsert(
        &self,
        caller: Caller,
        command: UpsertCommand,
    ) -> Result<UpsertOutcome, ProfilesError> {
        caller.require_not_partner()?;
        if command.identifiers.is_empty() {
            return Err(ProfilesError::invalid(
                "identifiers",
                "at least one is required",
            ));
        }
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        self.write(move |conn| {
            check_changes(conn, &command.changes)?;
            let owners = owners(conn, &lookup_key, &command.identifiers)?;
            let (subject, key, created, merged) = match owners.len() {
                0 => {
                    let (subject, key) = create_subject(conn, &keys)?;
                    (subject, key, true, Vec::new())
                }
                1 => {
                    let subject = owners.first().copied().ok_or(ProfilesError::Corrupt)?;
                    (subject, keys.get(conn, subject)?, false, Vec::new())
                }
                _ if !command.merge_if_needed => {
                    let names: Vec<String> = owners.iter().map(Uuid::to_string).collect();
                    return Err(ProfilesError::FailedPrecondition(format!(
                        "the identifiers belong to different profiles ({}): merge them, or set merge_if_needed",
                        names.join(", ")
                    )));
                }
                _ => {
                    // UUID v7 sort by creation: the oldest profile survives.
                    let mut owners = owners.into_iter();
                    let survivor = owners.next().ok_or(ProfilesError::Corrupt)?;
                    let merged: Vec<Uuid> = owners.collect();
                    for loser in &merged {
                        merge_into(conn, &keys, &caller, survivor, *loser, "identifiers of one upsert belonged to both profiles")?;
                    }
                    (survivor, keys.get(conn, survivor)?, false, merged)
                }
            };
            let write = ResolvedWrite {
                subject,
                key: &key,
                created,
                identifiers: &command.identifiers,
                changes: &command.changes,
                source: &command.source,
                overwrite: Overwrite::Any,
            };
            write.store(conn, &lookup_key, &caller)?;
            let profile = reload(conn, &keys, subject)?;
            Ok(UpsertOutcome {
                profile: visible_after_write(profile),
                created,
                merged,
            })
        })
        .await
    }

    pub async fn get(
        &self,
        caller: Caller,
        lookup: SubjectLookup,
    ) -> Result<Profile, ProfilesError> {
        // Partners read through `PartnerSync::get`, which applies what subjects share.
        caller.require_not_partner()?;
        let purpose = caller.read_purpose()?.clone();
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        self.db
            .run(move |conn| {
                let row = resolve(conn, &lookup_key, &lookup)?
                    .ok_or(ProfilesError::NotFound("profile"))?;
                check_readable(&row, &purpose)?;
                access_log::record(conn, &caller, Action::Read, &[row.subject_id])?;
                view::load_one(conn, &keys, row)
            })
            .await
    }

    /// What messaging needs of each of `subjects` (1 to [`contacts::MAX_SUBJECTS`]), one contact
    /// per id in the order asked. Partners may not ask: they reach only the subjects they
    /// synced or that share with them, one at a time through `PartnerSync::get`.
    pub async fn contacts(
        &self,
        caller: Caller,
        subjects: Vec<Uuid>,
    ) -> Result<Vec<Contact>, ProfilesError> {
        if caller.partner().is_some() {
            return Err(ProfilesError::PermissionDenied(
                "contacts are for the suite's own services, not partners",
            ));
        }
        if subjects.is_empty() || subjects.len() > contacts::MAX_SUBJECTS {
            return Err(ProfilesError::invalid(
                "subject_ids",
                format!("1 to {} subject ids", contacts::MAX_SUBJECTS),
            ));
        }
        let purpose = caller.read_purpose()?.clone();
        let keys = self.keys.clone();
        self.db
            .run(move |conn| contacts::load(conn, &keys, &caller, &purpose, &subjects))
            .await
    }

    pub async fn update(
        &self,
        caller: Caller,
        subject: Uuid,
        changes: Vec<AttributeChange>,
        source: String,
    ) -> Result<Profile, ProfilesError> {
        caller.require_not_partner()?;
        let keys = self.keys.clone();
        self.write(move |conn| {
            lock_live(conn, subject)?;
            check_changes(conn, &changes)?;
            let key = keys.get(conn, subject)?;
            if apply_changes(conn, &key, subject, &changes, &source, Overwrite::Any)? {
                mark_updated(conn, subject)?;
            }
            access_log::record(conn, &caller, Action::Write, &[subject])?;
            Ok(visible_after_write(reload(conn, &keys, subject)?))
        })
        .await
    }

    pub async fn add_identifier(
        &self,
        caller: Caller,
        subject: Uuid,
        new: NewIdentifier,
        source: String,
    ) -> Result<Profile, ProfilesError> {
        caller.require_not_partner()?;
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        self.write(move |conn| {
            lock_live(conn, subject)?;
            let key = keys.get(conn, subject)?;
            if attach_identifier(conn, &lookup_key, &key, subject, &new, &source)? {
                mark_updated(conn, subject)?;
            }
            access_log::record(conn, &caller, Action::Write, &[subject])?;
            Ok(visible_after_write(reload(conn, &keys, subject)?))
        })
        .await
    }

    pub async fn remove_identifier(
        &self,
        caller: Caller,
        subject: Uuid,
        identifier: Identifier,
    ) -> Result<Profile, ProfilesError> {
        caller.require_not_partner()?;
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        self.write(move |conn| {
            lock_live(conn, subject)?;
            let removed =
                identifier_store::delete_by_lookup(conn, subject, &identifier.lookup(&lookup_key))?;
            if removed == 0 {
                return Err(ProfilesError::NotFound("identifier"));
            }
            mark_updated(conn, subject)?;
            access_log::record(conn, &caller, Action::Write, &[subject])?;
            Ok(visible_after_write(reload(conn, &keys, subject)?))
        })
        .await
    }

    pub async fn merge(
        &self,
        caller: Caller,
        survivor: Uuid,
        merged: Uuid,
        reason: String,
    ) -> Result<Profile, ProfilesError> {
        caller.require_not_partner()?;
        if survivor == merged {
            return Err(ProfilesError::invalid(
                "merged_subject_id",
                "is subject_id itself",
            ));
        }
        if reason.trim().is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(ProfilesError::invalid(
                "reason",
                format!("1 to {MAX_REASON_CHARS} characters"),
            ));
        }
        let keys = self.keys.clone();
        self.write(move |conn| {
            merge_into(conn, &keys, &caller, survivor, merged, reason.trim())?;
            Ok(visible_after_write(reload(conn, &keys, survivor)?))
        })
        .await
    }

    /// Live profiles in creation order; restricted ones come without their personal values
    /// unless the purpose allows them.
    pub async fn list(
        &self,
        caller: Caller,
        page: Page,
    ) -> Result<(Vec<Profile>, ecrm_proto::ecrm::common::v1::PageResponse), ProfilesError> {
        caller.require_not_partner()?;
        let purpose = caller.read_purpose()?.clone();
        let keys = self.keys.clone();
        self.db
            .run(move |conn| {
                let rows = store::list_live_after(conn, page.after, page.limit())?;
                let (rows, response) = page.finish(rows, |row| row.subject_id);
                let readable: Vec<Uuid> = rows
                    .iter()
                    .filter(|r| r.restricted_at.is_none() || purpose.allowed_when_restricted())
                    .map(|r| r.subject_id)
                    .collect();
                access_log::record(conn, &caller, Action::Read, &readable)?;
                let profiles = view::load(conn, &keys, rows)?
                    .into_iter()
                    .map(|p| {
                        if readable.contains(&p.subject_id) {
                            p
                        } else {
                            p.redacted()
                        }
                    })
                    .collect();
                Ok((profiles, response))
            })
            .await
    }

    pub async fn define_attribute(
        &self,
        caller: Caller,
        definition: Definition,
    ) -> Result<Definition, ProfilesError> {
        caller.require_not_partner()?;
        self.db
            .run(move |conn| {
                let row = attribute_store::upsert_definition(
                    conn,
                    &definition.key,
                    definition.value_type.as_str(),
                    &definition.description,
                )?;
                if row.value_type != definition.value_type.as_str() {
                    return Err(ProfilesError::FailedPrecondition(format!(
                        "attribute {:?} is already declared as {}: its type cannot change",
                        row.key, row.value_type
                    )));
                }
                definition_from_row(row)
            })
            .await
    }

    pub async fn list_definitions(&self) -> Result<Vec<Definition>, ProfilesError> {
        self.db
            .run(|conn| {
                attribute_store::list_definitions(conn)?
                    .into_iter()
                    .map(definition_from_row)
                    .collect()
            })
            .await
    }
}

/// Fails when the subject's processing is restricted and `purpose` is not one that survives a
/// restriction.
pub fn check_readable(row: &ProfileRow, purpose: &Purpose) -> Result<(), ProfilesError> {
    if row.restricted_at.is_some() && !purpose.allowed_when_restricted() {
        return Err(ProfilesError::FailedPrecondition(
            "processing of this subject's data is restricted (GDPR Art. 18)".to_owned(),
        ));
    }
    Ok(())
}

/// Records that a live profile changed: its date, and an `updated` change in the feed.
pub fn mark_updated(conn: &mut PgConnection, subject: Uuid) -> Result<(), ProfilesError> {
    store::touch(conn, subject)?;
    change_store::record(conn, &[NewChange::of(ChangeKind::Updated, subject)])?;
    Ok(())
}

/// After a write, a restricted profile is returned without its personal values: writing is
/// storage, reading them back would be processing.
fn visible_after_write(profile: Profile) -> Profile {
    if profile.restricted {
        profile.redacted()
    } else {
        profile
    }
}

fn definition_from_row(row: attribute_store::DefinitionRow) -> Result<Definition, ProfilesError> {
    Ok(Definition {
        value_type: ValueType::parse(&row.value_type).ok_or(ProfilesError::Corrupt)?,
        key: row.key,
        description: row.description,
    })
}

/// The profiles that already own any of `identifiers`.
pub fn owners(
    conn: &mut PgConnection,
    key: &BlindIndexKey,
    identifiers: &[NewIdentifier],
) -> Result<BTreeSet<Uuid>, ProfilesError> {
    let lookups: Vec<String> = identifiers
        .iter()
        .map(|new| new.identifier.lookup(key))
        .collect();
    Ok(identifier_store::find_subjects_by_lookups(conn, &lookups)?
        .into_iter()
        .map(|(_, subject)| subject)
        .collect())
}

/// An upsert once its subject is known: identifiers to attach and attributes to apply.
pub struct ResolvedWrite<'a> {
    pub subject: Uuid,
    pub key: &'a DataKey,
    /// Whether the subject was created by this write.
    pub created: bool,
    pub identifiers: &'a [NewIdentifier],
    pub changes: &'a [AttributeChange],
    pub source: &'a str,
    pub overwrite: Overwrite,
}

impl ResolvedWrite<'_> {
    /// Stores the write under the profile's lock, with its change in the feed (created, or
    /// updated when anything changed) and its entry in the access log.
    pub fn store(
        &self,
        conn: &mut PgConnection,
        lookup_key: &BlindIndexKey,
        caller: &Caller,
    ) -> Result<(), ProfilesError> {
        let subject = self.subject;
        lock_live(conn, subject)?;
        let mut changed = false;
        for new in self.identifiers {
            changed |= attach_identifier(conn, lookup_key, self.key, subject, new, self.source)?;
        }
        changed |= apply_changes(
            conn,
            self.key,
            subject,
            self.changes,
            self.source,
            self.overwrite,
        )?;
        if self.created {
            let feed = [NewChange::of(ChangeKind::Created, subject)];
            change_store::record(conn, &feed)?;
        } else if changed {
            mark_updated(conn, subject)?;
        }
        access_log::record(conn, caller, Action::Write, &[subject])?;
        Ok(())
    }
}

/// Checks attribute changes against their rules and the declared custom attributes.
pub fn check_changes(
    conn: &mut PgConnection,
    changes: &[AttributeChange],
) -> Result<(), ProfilesError> {
    let definitions: HashMap<String, ValueType> = if changes
        .iter()
        .any(|c| matches!(c.name, crate::attributes::domain::AttributeName::Custom(_)))
    {
        attribute_store::list_definitions(conn)?
            .into_iter()
            .filter_map(|row| Some((row.key, ValueType::parse(&row.value_type)?)))
            .collect()
    } else {
        HashMap::new()
    };
    changes
        .iter()
        .try_for_each(|change| check_change(change, &definitions))
}

/// A new subject: its profile row and its data key.
pub fn create_subject(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
) -> Result<(Uuid, DataKey), ProfilesError> {
    let subject = Uuid::now_v7();
    store::insert(conn, subject)?;
    let key = keys.create(conn, subject)?;
    Ok((subject, key))
}

/// The live profile `subject`, read again after a write.
fn reload(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    subject: Uuid,
) -> Result<Profile, ProfilesError> {
    let row = lock_live(conn, subject)?;
    view::load_one(conn, keys, row)
}

/// The live profile `subject`, locked for the rest of the transaction.
pub fn lock_live(conn: &mut PgConnection, subject: Uuid) -> Result<ProfileRow, ProfilesError> {
    store::lock(conn, &[subject])?
        .into_iter()
        .find(ProfileRow::is_live)
        .ok_or(ProfilesError::NotFound("profile"))
}

/// The live profile a lookup names: a merged subject resolves to the profile it was merged
/// into; an erased one to nothing.
pub fn resolve(
    conn: &mut PgConnection,
    lookup_key: &BlindIndexKey,
    lookup: &SubjectLookup,
) -> Result<Option<ProfileRow>, ProfilesError> {
    let subject = match lookup {
        SubjectLookup::Id(id) => *id,
        SubjectLookup::Identifier(identifier) => {
            match identifier_store::find_by_lookup(conn, &identifier.lookup(lookup_key))? {
                Some(row) => row.subject_id,
                None => return Ok(None),
            }
        }
    };
    let Some(row) = store::find(conn, subject)? else {
        return Ok(None);
    };
    let row = match row.merged_into {
        Some(into) => store::find(conn, into)?,
        None => Some(row),
    };
    Ok(row.filter(ProfileRow::is_live))
}

/// Adds `new` to the subject, or records its verification when the subject already has it; an
/// identifier of another profile is ALREADY_EXISTS, naming that profile. Returns whether
/// anything changed.
pub fn attach_identifier(
    conn: &mut PgConnection,
    lookup_key: &BlindIndexKey,
    key: &DataKey,
    subject: Uuid,
    new: &NewIdentifier,
    source: &str,
) -> Result<bool, ProfilesError> {
    let lookup = new.identifier.lookup(lookup_key);
    if let Some(existing) = identifier_store::find_by_lookup(conn, &lookup)? {
        if existing.subject_id != subject {
            return Err(ProfilesError::AlreadyExists(format!(
                "the identifier belongs to profile {}: merge the profiles to move it",
                existing.subject_id
            )));
        }
        return match (existing.verified_at, new.verified_at) {
            (None, Some(at)) => {
                identifier_store::update_verification(
                    conn,
                    existing.id,
                    at,
                    new.verification_method.as_deref(),
                )?;
                Ok(true)
            }
            _ => Ok(false),
        };
    }
    let id = Uuid::now_v7();
    let sealed = keys::seal(
        key,
        IDENTIFIER_TABLE,
        id,
        new.identifier.value.expose().as_bytes(),
    )?;
    identifier_store::insert(
        conn,
        &NewIdentifierRow {
            id,
            subject_id: subject,
            kind: new.identifier.kind.as_str(),
            partner_id: new.identifier.partner_id.as_deref(),
            custom_type: new.identifier.custom_type.as_deref(),
            lookup: &lookup,
            sealed_value: &sealed,
            verified_at: new.verified_at,
            verification_method: new.verification_method.as_deref(),
            source,
        },
    )?;
    Ok(true)
}

/// Which current attribute values a write may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    Any,
    /// Only values its own source wrote, or none: what partners may do, so a partner fills in
    /// what the organisation does not know but never changes what it does.
    OwnOrUnknown,
}

/// Applies checked attribute changes; a value equal to the current one is not recorded again.
/// Returns whether anything changed.
pub fn apply_changes(
    conn: &mut PgConnection,
    key: &DataKey,
    subject: Uuid,
    changes: &[AttributeChange],
    source: &str,
    overwrite: Overwrite,
) -> Result<bool, ProfilesError> {
    if changes.is_empty() {
        return Ok(false);
    }
    let mut current = HashMap::new();
    for row in attribute_store::list_current_by_subjects(conn, &[subject])? {
        let (name, value) = view::open_attribute(key, &row)?;
        current.insert(name, (value, row.source));
    }
    let mut changed = false;
    for change in changes {
        let (now, now_source) = match current.get(&change.name) {
            Some((value, from)) => (value.clone(), Some(from.as_str())),
            None => (None, None),
        };
        if now == change.value {
            continue;
        }
        if overwrite == Overwrite::OwnOrUnknown && now.is_some() && now_source != Some(source) {
            continue;
        }
        let id = Uuid::now_v7();
        let sealed = change
            .value
            .as_ref()
            .map(|value| view::seal_attribute(key, id, value))
            .transpose()?;
        attribute_store::insert_current(
            conn,
            &attribute_store::NewAttributeValue {
                id,
                subject_id: subject,
                name: &change.name.to_string(),
                sealed_value: sealed.as_deref(),
                source,
                current: true,
            },
        )?;
        current.insert(
            change.name.clone(),
            (change.value.clone(), source.to_owned()),
        );
        changed = true;
    }
    Ok(changed)
}

/// Moves everything of `merged` into `survivor`, resealed with the survivor's key, records the
/// merge, and destroys the merged subject's key.
pub fn merge_into(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    caller: &Caller,
    survivor: Uuid,
    merged: Uuid,
    reason: &str,
) -> Result<(), ProfilesError> {
    let rows = store::lock(conn, &[survivor, merged])?;
    let live = |subject| rows.iter().find(|r| r.subject_id == subject && r.is_live());
    let (Some(survivor_row), Some(merged_row)) = (live(survivor), live(merged)) else {
        return Err(ProfilesError::NotFound("profile"));
    };
    let restrict = merged_row.restricted_at.is_some() && survivor_row.restricted_at.is_none();
    let restricted_at = merged_row.restricted_at;
    let to = keys.get(conn, survivor)?;
    let from = keys.get(conn, merged)?;
    for row in identifier_store::list_by_subjects(conn, &[merged])? {
        let value = keys::open(&from, IDENTIFIER_TABLE, row.id, &row.sealed_value)?;
        let sealed = keys::seal(&to, IDENTIFIER_TABLE, row.id, &value)?;
        identifier_store::update_subject(conn, row.id, survivor, &sealed)?;
    }
    let survivor_names: HashSet<String> =
        attribute_store::list_current_by_subjects(conn, &[survivor])?
            .into_iter()
            .map(|r| r.name)
            .collect();
    for row in attribute_store::list_by_subject(conn, merged)? {
        let sealed = match &row.sealed_value {
            Some(sealed) => {
                let json = keys::open(&from, view::ATTRIBUTE_TABLE, row.id, sealed)?;
                Some(keys::seal(&to, view::ATTRIBUTE_TABLE, row.id, &json)?)
            }
            None => None,
        };
        // The survivor's values win; the merged profile's stay in the history.
        let current = row.current && !survivor_names.contains(&row.name);
        attribute_store::update_subject(conn, row.id, survivor, sealed.as_deref(), current)?;
    }
    for row in interaction_store::list_all_by_subject(conn, merged)? {
        if let Some(sealed) = &row.sealed_payload {
            let payload = keys::open(
                &from,
                crate::interactions::domain::INTERACTION_TABLE,
                row.id,
                sealed,
            )?;
            let resealed = keys::seal(
                &to,
                crate::interactions::domain::INTERACTION_TABLE,
                row.id,
                &payload,
            )?;
            interaction_store::update_subject(conn, row.id, survivor, &resealed)?;
        }
    }
    for row in store::list_merges_by_subject(conn, merged)? {
        let text = keys::open(&from, MERGE_TABLE, row.id, &row.sealed_reason)?;
        let sealed = keys::seal(&to, MERGE_TABLE, row.id, &text)?;
        store::update_merge_subject(conn, row.id, survivor, &sealed)?;
    }
    access_log::update_subject(conn, merged, survivor)?;
    disclosures::update_subject(conn, merged, survivor)?;
    if restrict {
        store::update_restricted(conn, survivor, restricted_at)?;
    }
    store::mark_merged(conn, merged, survivor)?;
    store::touch(conn, survivor)?;
    keys.destroy(conn, merged)?;
    let merge_id = Uuid::now_v7();
    let sealed_reason = keys::seal(&to, MERGE_TABLE, merge_id, reason.as_bytes())?;
    store::insert_merge(
        conn,
        merge_id,
        survivor,
        merged,
        &sealed_reason,
        &caller.principal.subject,
    )?;
    change_store::record(
        conn,
        &[NewChange {
            merged_subject_id: Some(merged),
            ..NewChange::of(ChangeKind::Merged, survivor)
        }],
    )?;
    access_log::record(conn, caller, Action::Write, &[survivor])?;
    Ok(())
}
