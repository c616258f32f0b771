//! Per-subject data keys: every personal value of a subject is sealed with its key, and the key
//! is stored only wrapped by the master key. Destroying the key erases the subject's data in
//! every copy of the database at once.

use std::sync::Arc;

use diesel::prelude::*;
use ecrm_crypto::{DataKey, MasterKey};
use uuid::Uuid;

use crate::error::ProfilesError;
use crate::schema::profiles::subject_keys;

/// What a sealed value is bound to, so a ciphertext copied to another row does not open.
pub fn context(table: &str, row: Uuid) -> Vec<u8> {
    format!("profiles.{table}:{row}").into_bytes()
}

fn key_context(subject: Uuid) -> Vec<u8> {
    context("subject_key", subject)
}

#[derive(Debug, Clone)]
pub struct SubjectKeys {
    master: Arc<MasterKey>,
}

impl SubjectKeys {
    pub fn new(master: Arc<MasterKey>) -> Self {
        Self { master }
    }

    /// Makes and stores the key of a new subject.
    pub fn create(&self, conn: &mut PgConnection, subject: Uuid) -> Result<DataKey, ProfilesError> {
        let (key, wrapped) = self.master.new_data_key(&key_context(subject))?;
        diesel::insert_into(subject_keys::table)
            .values((
                subject_keys::subject_id.eq(subject),
                subject_keys::wrapped_key.eq(wrapped),
            ))
            .execute(conn)?;
        Ok(key)
    }

    /// The subject's key; `None` once it was destroyed.
    pub fn find(
        &self,
        conn: &mut PgConnection,
        subject: Uuid,
    ) -> Result<Option<DataKey>, ProfilesError> {
        let wrapped: Option<Vec<u8>> = subject_keys::table
            .find(subject)
            .select(subject_keys::wrapped_key)
            .first(conn)
            .optional()?;
        wrapped
            .map(|wrapped| Ok(self.master.open_data_key(&key_context(subject), &wrapped)?))
            .transpose()
    }

    /// The keys of `subjects` that still have one.
    pub fn find_many(
        &self,
        conn: &mut PgConnection,
        subjects: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, DataKey>, ProfilesError> {
        let wrapped: Vec<(Uuid, Vec<u8>)> = subject_keys::table
            .filter(subject_keys::subject_id.eq_any(subjects))
            .select((subject_keys::subject_id, subject_keys::wrapped_key))
            .load(conn)?;
        wrapped
            .into_iter()
            .map(|(subject, wrapped)| {
                Ok((
                    subject,
                    self.master.open_data_key(&key_context(subject), &wrapped)?,
                ))
            })
            .collect()
    }

    /// The key of a subject that must have one (a live profile).
    pub fn get(&self, conn: &mut PgConnection, subject: Uuid) -> Result<DataKey, ProfilesError> {
        self.find(conn, subject)?.ok_or(ProfilesError::Corrupt)
    }

    /// Destroys the subject's key: what was sealed with it can no longer be read.
    pub fn destroy(&self, conn: &mut PgConnection, subject: Uuid) -> Result<bool, ProfilesError> {
        Ok(diesel::delete(subject_keys::table.find(subject)).execute(conn)? > 0)
    }
}

/// Seals `plaintext` for `table`'s row `row` with `key`.
pub fn seal(
    key: &DataKey,
    table: &str,
    row: Uuid,
    plaintext: &[u8],
) -> Result<Vec<u8>, ProfilesError> {
    Ok(key.seal(&context(table, row), plaintext)?)
}

/// Opens what [`seal`] sealed for the same row.
pub fn open(
    key: &DataKey,
    table: &str,
    row: Uuid,
    sealed: &[u8],
) -> Result<Vec<u8>, ProfilesError> {
    Ok(key.open(&context(table, row), sealed)?)
}

/// Opens a sealed UTF-8 string.
pub fn open_text(
    key: &DataKey,
    table: &str,
    row: Uuid,
    sealed: &[u8],
) -> Result<String, ProfilesError> {
    String::from_utf8(open(key, table, row, sealed)?).map_err(|_| ProfilesError::Corrupt)
}
