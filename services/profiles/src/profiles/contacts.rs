//! Contact points for messaging: for a batch of subjects, the address to write to on each
//! channel, their time zone, locale and given name, read in a few statements for the batch.

use std::collections::{BTreeSet, HashMap};

use diesel::PgConnection;
use ecrm_crypto::Secret;
use uuid::Uuid;

use super::store::{self, ProfileRow};
use super::view;
use crate::access_log::{self, Action};
use crate::attributes::domain::{AttributeName, Standard, Value};
use crate::attributes::store as attribute_store;
use crate::caller::{Caller, Purpose};
use crate::error::ProfilesError;
use crate::identifiers::domain::IdentifierKind;
use crate::identifiers::store::{self as identifier_store, IdentifierRow};
use crate::keys::SubjectKeys;

/// The most subjects one call may ask for.
pub const MAX_SUBJECTS: usize = 1000;

/// The only attributes messaging needs.
const ATTRIBUTES: [Standard; 3] = [Standard::GivenName, Standard::Locale, Standard::Timezone];

/// What one asked id leads to.
#[derive(Debug, Clone)]
pub struct Contact {
    /// As asked.
    pub subject_id: Uuid,
    /// `None` when no live profile has that id (never existed, erased, or merged into a profile
    /// since erased).
    pub profile: Option<ContactProfile>,
}

/// The live profile an id leads to, with what messaging needs of it.
#[derive(Debug, Clone)]
pub struct ContactProfile {
    /// The surviving profile, when the id asked was merged into it.
    pub merged_into: Option<Uuid>,
    pub restricted: bool,
    /// Empty while processing is restricted, unless the purpose survives a restriction.
    pub points: ContactPoints,
}

#[derive(Debug, Clone, Default)]
pub struct ContactPoints {
    pub email: Option<Secret<String>>,
    /// E.164.
    pub phone: Option<Secret<String>>,
    pub given_name: Option<Secret<String>>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
}

/// The contacts of `asked`, one per id in the order asked. Reads only the subjects whose data
/// `purpose` allows, and records those reads in the access log.
pub fn load(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    caller: &Caller,
    purpose: &Purpose,
    asked: &[Uuid],
) -> Result<Vec<Contact>, ProfilesError> {
    let rows = rows_with_survivors(conn, asked)?;
    let live = |id: &Uuid| rows.get(id).filter(|row| row.is_live());
    // Each asked id's live profile, and whether it was reached through a merge.
    let resolved: HashMap<Uuid, (&ProfileRow, bool)> = asked
        .iter()
        .filter_map(|id| {
            let row = rows.get(id)?;
            match row.merged_into {
                Some(into) => live(&into).map(|survivor| (*id, (survivor, true))),
                None => live(id).map(|row| (*id, (row, false))),
            }
        })
        .collect();
    let readable: Vec<Uuid> = resolved
        .values()
        .map(|(row, _)| *row)
        .filter(|row| row.restricted_at.is_none() || purpose.allowed_when_restricted())
        .map(|row| row.subject_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let points = open_points(conn, keys, &readable)?;
    access_log::record(conn, caller, Action::Read, &readable)?;
    Ok(asked
        .iter()
        .map(|id| Contact {
            subject_id: *id,
            profile: resolved.get(id).map(|(row, merged)| ContactProfile {
                merged_into: merged.then_some(row.subject_id),
                restricted: row.restricted_at.is_some(),
                points: points.get(&row.subject_id).cloned().unwrap_or_default(),
            }),
        })
        .collect())
}

/// The rows of `asked` and of the profiles any of them was merged into, by subject id. A merge
/// points every tombstone at the final survivor, so one step reaches it.
fn rows_with_survivors(
    conn: &mut PgConnection,
    asked: &[Uuid],
) -> Result<HashMap<Uuid, ProfileRow>, ProfilesError> {
    let unique: Vec<Uuid> = asked
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rows: HashMap<Uuid, ProfileRow> = store::find_many(conn, &unique)?
        .into_iter()
        .map(|row| (row.subject_id, row))
        .collect();
    let survivors: Vec<Uuid> = rows
        .values()
        .filter_map(|row| row.merged_into)
        .filter(|into| !rows.contains_key(into))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !survivors.is_empty() {
        rows.extend(
            store::find_many(conn, &survivors)?
                .into_iter()
                .map(|row| (row.subject_id, row)),
        );
    }
    Ok(rows)
}

/// Opens the chosen contact points of `subjects` (live profiles): only the identifiers and
/// attributes messaging uses are read, and only the chosen identifiers are decrypted.
fn open_points(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    subjects: &[Uuid],
) -> Result<HashMap<Uuid, ContactPoints>, ProfilesError> {
    if subjects.is_empty() {
        return Ok(HashMap::new());
    }
    let data_keys = keys.find_many(conn, subjects)?;
    let kinds = [
        IdentifierKind::Email.as_str(),
        IdentifierKind::Phone.as_str(),
    ];
    let mut identifiers: HashMap<(Uuid, IdentifierKind), Vec<IdentifierRow>> = HashMap::new();
    for row in identifier_store::list_by_subjects_and_kinds(conn, subjects, &kinds)? {
        let kind = IdentifierKind::parse(&row.kind).ok_or(ProfilesError::Corrupt)?;
        identifiers
            .entry((row.subject_id, kind))
            .or_default()
            .push(row);
    }
    let names = ATTRIBUTES.map(Standard::as_str);
    let mut attributes: HashMap<Uuid, Vec<attribute_store::AttributeValueRow>> = HashMap::new();
    for row in attribute_store::list_current_by_subjects_and_names(conn, subjects, &names)? {
        attributes.entry(row.subject_id).or_default().push(row);
    }
    let mut opened = HashMap::with_capacity(subjects.len());
    for subject in subjects {
        let key = data_keys.get(subject).ok_or(ProfilesError::Corrupt)?;
        let mut open_chosen = |kind| {
            identifiers
                .remove(&(*subject, kind))
                .and_then(choose)
                .map(|row| view::open_identifier(key, row).map(|s| s.identifier.value))
                .transpose()
        };
        let mut points = ContactPoints {
            email: open_chosen(IdentifierKind::Email)?,
            phone: open_chosen(IdentifierKind::Phone)?,
            ..ContactPoints::default()
        };
        for row in attributes.remove(subject).unwrap_or_default() {
            let (AttributeName::Standard(name), Some(Value::Text(text))) =
                view::open_attribute(key, &row)?
            else {
                continue;
            };
            match name {
                Standard::GivenName => points.given_name = Some(Secret::new(text)),
                Standard::Locale => points.locale = Some(text),
                Standard::Timezone => points.timezone = Some(text),
                _ => {}
            }
        }
        opened.insert(*subject, points);
    }
    Ok(opened)
}

/// The identifier to write to among one subject's identifiers of one kind: the verified one
/// added last, else the one added last (ids, UUID v7, order those added in one transaction).
fn choose(rows: Vec<IdentifierRow>) -> Option<IdentifierRow> {
    rows.into_iter()
        .max_by_key(|row| (row.verified_at.is_some(), row.added_at, row.id))
}
