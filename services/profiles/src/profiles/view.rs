//! Reading profiles back: rows of several tables, opened with each subject's key.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use ecrm_crypto::{DataKey, Secret};
use uuid::Uuid;

use super::store::{self, ProfileRow};
use crate::attributes::domain::{AttributeName, Attributes, Value};
use crate::attributes::store::{self as attribute_store, AttributeValueRow};
use crate::error::ProfilesError;
use crate::identifiers::domain::{Identifier, IdentifierKind, StoredIdentifier};
use crate::identifiers::store::{self as identifier_store, IdentifierRow};
use crate::keys::{self, SubjectKeys};

pub const IDENTIFIER_TABLE: &str = "identifier";
pub const ATTRIBUTE_TABLE: &str = "attribute";
pub const MERGE_TABLE: &str = "merge";

/// A profile as the domain hands it out, with personal values opened.
#[derive(Debug, Clone)]
pub struct Profile {
    pub subject_id: Uuid,
    pub identifiers: Vec<StoredIdentifier>,
    pub attributes: Attributes,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub restricted: bool,
    pub merged_subject_ids: Vec<Uuid>,
}

impl Profile {
    /// The same profile without any personal value: what a caller that may not read it sees.
    pub fn redacted(mut self) -> Self {
        self.identifiers.clear();
        self.attributes.clear();
        self
    }
}

pub fn open_identifier(
    key: &DataKey,
    row: IdentifierRow,
) -> Result<StoredIdentifier, ProfilesError> {
    let value = keys::open_text(key, IDENTIFIER_TABLE, row.id, &row.sealed_value)?;
    Ok(StoredIdentifier {
        identifier: Identifier {
            kind: IdentifierKind::parse(&row.kind).ok_or(ProfilesError::Corrupt)?,
            partner_id: row.partner_id,
            custom_type: row.custom_type,
            value: Secret::new(value),
        },
        verified_at: row.verified_at,
        verification_method: row.verification_method,
        source: row.source,
        added_at: row.added_at,
    })
}

/// The attribute's name and value; `None` for a value that was cleared.
pub fn open_attribute(
    key: &DataKey,
    row: &AttributeValueRow,
) -> Result<(AttributeName, Option<Value>), ProfilesError> {
    let name = AttributeName::parse(&row.name).ok_or(ProfilesError::Corrupt)?;
    let value = match &row.sealed_value {
        None => None,
        Some(sealed) => {
            let json = keys::open(key, ATTRIBUTE_TABLE, row.id, sealed)?;
            Some(serde_json::from_slice(&json).map_err(|_| ProfilesError::Corrupt)?)
        }
    };
    Ok((name, value))
}

/// Seals an attribute value for the row `id`.
pub fn seal_attribute(key: &DataKey, id: Uuid, value: &Value) -> Result<Vec<u8>, ProfilesError> {
    let json = serde_json::to_vec(value).map_err(|_| ProfilesError::Corrupt)?;
    keys::seal(key, ATTRIBUTE_TABLE, id, &json)
}

/// Loads and opens the profiles of `rows` (live ones), keeping their order.
pub fn load(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    rows: Vec<ProfileRow>,
) -> Result<Vec<Profile>, ProfilesError> {
    let subjects: Vec<Uuid> = rows.iter().map(|r| r.subject_id).collect();
    let data_keys = keys.find_many(conn, &subjects)?;
    let mut identifiers: HashMap<Uuid, Vec<IdentifierRow>> = HashMap::new();
    for row in identifier_store::list_by_subjects(conn, &subjects)? {
        identifiers.entry(row.subject_id).or_default().push(row);
    }
    let mut attributes: HashMap<Uuid, Vec<AttributeValueRow>> = HashMap::new();
    for row in attribute_store::list_current_by_subjects(conn, &subjects)? {
        attributes.entry(row.subject_id).or_default().push(row);
    }
    let mut merged: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (into, subject) in store::list_merged_into(conn, &subjects)? {
        merged.entry(into).or_default().push(subject);
    }
    rows.into_iter()
        .map(|row| {
            let key = data_keys
                .get(&row.subject_id)
                .ok_or(ProfilesError::Corrupt)?;
            let identifiers = identifiers
                .remove(&row.subject_id)
                .unwrap_or_default()
                .into_iter()
                .map(|r| open_identifier(key, r))
                .collect::<Result<_, _>>()?;
            let mut opened = Attributes::new();
            for r in attributes.remove(&row.subject_id).unwrap_or_default() {
                if let (name, Some(value)) = open_attribute(key, &r)? {
                    opened.insert(name, value);
                }
            }
            Ok(Profile {
                subject_id: row.subject_id,
                identifiers,
                attributes: opened,
                created_at: row.created_at,
                updated_at: row.updated_at,
                restricted: row.restricted_at.is_some(),
                merged_subject_ids: merged.remove(&row.subject_id).unwrap_or_default(),
            })
        })
        .collect()
}

/// Loads one live profile.
pub fn load_one(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    row: ProfileRow,
) -> Result<Profile, ProfilesError> {
    load(conn, keys, vec![row])?
        .pop()
        .ok_or(ProfilesError::Corrupt)
}
