//! What a purpose is, its validation, and notices versioned by content hash.

use chrono::{DateTime, Utc};
use ecrm_platform::Db;
use ecrm_platform::paging::Page;
use ecrm_proto::ecrm::common::v1::PageResponse;
use uuid::Uuid;

use super::store::{self, NewNotice, NewPurpose, PurposeRow};
use crate::error::ConsentError;

/// Room for `share:` and the longest partner id.
const MAX_KEY_CHARS: usize = 80;
const MAX_DESCRIPTION_CHARS: usize = 2000;
const MAX_CATEGORY_CHARS: usize = 64;
const MAX_CATEGORIES: usize = 64;
/// 64 KiB of notice text.
const MAX_NOTICE_BYTES: usize = 64 * 1024;
/// The prefix of purposes that share data with one partner: `share:<partner_id>`.
pub const SHARE_PREFIX: &str = "share:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LawfulBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterest,
    SoftOptIn,
}

impl LawfulBasis {
    pub const ALL: [LawfulBasis; 7] = [
        LawfulBasis::Consent,
        LawfulBasis::Contract,
        LawfulBasis::LegalObligation,
        LawfulBasis::VitalInterests,
        LawfulBasis::PublicTask,
        LawfulBasis::LegitimateInterest,
        LawfulBasis::SoftOptIn,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            LawfulBasis::Consent => "consent",
            LawfulBasis::Contract => "contract",
            LawfulBasis::LegalObligation => "legal_obligation",
            LawfulBasis::VitalInterests => "vital_interests",
            LawfulBasis::PublicTask => "public_task",
            LawfulBasis::LegitimateInterest => "legitimate_interest",
            LawfulBasis::SoftOptIn => "soft_opt_in",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == stored)
    }

    /// Whether subjects grant and withdraw under this basis: consent, and soft opt-in (whose
    /// opt-out is a withdrawal).
    pub fn takes_decisions(self) -> bool {
        matches!(self, LawfulBasis::Consent | LawfulBasis::SoftOptIn)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Email,
    Sms,
    Push,
    Phone,
    Post,
    Partner,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Email,
        Channel::Sms,
        Channel::Push,
        Channel::Phone,
        Channel::Post,
        Channel::Partner,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Phone => "phone",
            Channel::Post => "post",
            Channel::Partner => "partner",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == stored)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Purpose {
    pub key: String,
    pub description: String,
    pub lawful_basis: LawfulBasis,
    pub channels: Vec<Channel>,
    pub data_categories: Vec<String>,
    pub retention_days: u32,
    /// An objection to direct marketing ends it.
    pub direct_marketing: bool,
}

impl Purpose {
    /// Checks a purpose; errors name the field inside `purpose.`.
    pub fn new(
        key: &str,
        description: &str,
        lawful_basis: LawfulBasis,
        mut channels: Vec<Channel>,
        data_categories: &[String],
        retention_days: u32,
        direct_marketing: bool,
    ) -> Result<Self, ConsentError> {
        let key = check_key(key)?;
        let description = description.trim();
        if description.is_empty()
            || description.chars().count() > MAX_DESCRIPTION_CHARS
            || description.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(ConsentError::invalid(
                "purpose.description",
                format!("1 to {MAX_DESCRIPTION_CHARS} characters, no control characters"),
            ));
        }
        if channels.is_empty() {
            return Err(ConsentError::invalid(
                "purpose.channels",
                "at least one channel",
            ));
        }
        channels.sort();
        channels.dedup();
        if key.starts_with(SHARE_PREFIX) != (channels == [Channel::Partner]) {
            return Err(ConsentError::invalid(
                "purpose.channels",
                "CHANNEL_PARTNER alone, exactly for the purposes `share:<partner_id>`",
            ));
        }
        // Sharing with a partner rests on each subject's consent, never on a basis that would
        // allow it for everyone.
        if key.starts_with(SHARE_PREFIX) && lawful_basis != LawfulBasis::Consent {
            return Err(ConsentError::invalid(
                "purpose.lawful_basis",
                "sharing with a partner needs LAWFUL_BASIS_CONSENT",
            ));
        }
        if data_categories.len() > MAX_CATEGORIES {
            return Err(ConsentError::invalid(
                "purpose.data_categories",
                format!("at most {MAX_CATEGORIES}"),
            ));
        }
        let mut categories = Vec::with_capacity(data_categories.len());
        for (i, category) in data_categories.iter().enumerate() {
            let valid = !category.is_empty()
                && category.len() <= MAX_CATEGORY_CHARS
                && category.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.')
                });
            if !valid {
                return Err(ConsentError::invalid(
                    format!("purpose.data_categories[{i}]"),
                    format!("1 to {MAX_CATEGORY_CHARS} of a-z, 0-9, '_', '.', e.g. \"given_name\""),
                ));
            }
            categories.push(category.clone());
        }
        categories.sort();
        categories.dedup();
        Ok(Self {
            key,
            description: description.to_owned(),
            lawful_basis,
            channels,
            data_categories: categories,
            retention_days,
            direct_marketing,
        })
    }
}

/// A purpose key: a letter, then a-z, 0-9, `_`, `-`, `.`, `:`; a `share:` purpose names a valid
/// partner id.
pub fn check_key(key: &str) -> Result<String, ConsentError> {
    let valid = key.len() <= MAX_KEY_CHARS
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':')
        })
        && key
            .strip_prefix(SHARE_PREFIX)
            .is_none_or(ecrm_auth::is_valid_partner_id);
    if valid {
        Ok(key.to_owned())
    } else {
        Err(ConsentError::invalid(
            "purpose.key",
            format!(
                "1 to {MAX_KEY_CHARS} of a-z, 0-9, '_', '-', '.', ':', starting with a letter; \
                 \"share:<partner_id>\" for sharing with a partner"
            ),
        ))
    }
}

/// A stored purpose.
#[derive(Debug, Clone)]
pub struct StoredPurpose {
    pub purpose: Purpose,
    pub created_at: DateTime<Utc>,
    pub notice_versions: Vec<String>,
}

pub fn purpose_from_row(row: PurposeRow) -> Result<Purpose, ConsentError> {
    Ok(Purpose {
        lawful_basis: LawfulBasis::parse(&row.lawful_basis).ok_or(ConsentError::Corrupt)?,
        channels: row
            .channels
            .iter()
            .map(|c| c.as_deref().and_then(Channel::parse))
            .collect::<Option<_>>()
            .ok_or(ConsentError::Corrupt)?,
        data_categories: row.data_categories.into_iter().flatten().collect(),
        retention_days: u32::try_from(row.retention_days).map_err(|_| ConsentError::Corrupt)?,
        direct_marketing: row.direct_marketing,
        key: row.key,
        description: row.description,
    })
}

/// The version of a notice: lower-case hex SHA-256 of its text.
pub fn notice_version(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

#[derive(Debug, Clone)]
pub struct Purposes {
    db: Db,
}

impl Purposes {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Defines `purpose`; the same definition again is a no-op (`false`), another definition
    /// under the same key ALREADY_EXISTS: purposes are not redefined under consents given for
    /// them.
    pub async fn define(&self, purpose: Purpose) -> Result<(StoredPurpose, bool), ConsentError> {
        self.db
            .run(move |conn| {
                let inserted = store::insert_purpose(
                    conn,
                    &NewPurpose {
                        key: &purpose.key,
                        id: Uuid::now_v7(),
                        description: &purpose.description,
                        lawful_basis: purpose.lawful_basis.as_str(),
                        channels: purpose.channels.iter().map(|c| c.as_str()).collect(),
                        data_categories: purpose.data_categories.clone(),
                        retention_days: i32::try_from(purpose.retention_days).map_err(|_| {
                            ConsentError::invalid("purpose.retention_days", "too large")
                        })?,
                        direct_marketing: purpose.direct_marketing,
                    },
                )?;
                let stored = load(conn, &purpose.key)?.ok_or(ConsentError::NotFound("purpose"))?;
                if !inserted && stored.purpose != purpose {
                    return Err(ConsentError::AlreadyExists(format!(
                        "the purpose {:?} is defined otherwise; define a new purpose",
                        purpose.key
                    )));
                }
                Ok((stored, inserted))
            })
            .await
    }

    pub async fn get(&self, key: String) -> Result<StoredPurpose, ConsentError> {
        let key = check_key(&key).map_err(|_| ConsentError::invalid("key", "not a purpose key"))?;
        self.db
            .run(move |conn| load(conn, &key)?.ok_or(ConsentError::NotFound("purpose")))
            .await
    }

    pub async fn list(
        &self,
        page: Page,
    ) -> Result<(Vec<StoredPurpose>, PageResponse), ConsentError> {
        self.db
            .run(move |conn| {
                let rows = store::list_purposes_after(conn, page.after, page.limit())?;
                let (rows, next) = page.finish(rows, |row| row.id);
                let purposes = rows
                    .into_iter()
                    .map(|row| load_row(conn, row))
                    .collect::<Result<_, _>>()?;
                Ok((purposes, next))
            })
            .await
    }

    /// Publishes a notice; the same text again returns the version it has (`false`).
    pub async fn publish_notice(
        &self,
        purpose_key: String,
        text: String,
    ) -> Result<(String, bool, DateTime<Utc>), ConsentError> {
        let key = check_key(&purpose_key)
            .map_err(|_| ConsentError::invalid("purpose_key", "not a purpose key"))?;
        if text.trim().is_empty() || text.len() > MAX_NOTICE_BYTES {
            return Err(ConsentError::invalid(
                "text",
                format!("1 to {MAX_NOTICE_BYTES} bytes"),
            ));
        }
        let version = notice_version(&text);
        self.db
            .run(move |conn| {
                if store::find_purpose(conn, &key)?.is_none() {
                    return Err(ConsentError::invalid("purpose_key", "no such purpose"));
                }
                let created = store::insert_notice(
                    conn,
                    &NewNotice {
                        purpose_key: &key,
                        version: &version,
                        text: &text,
                    },
                )?;
                let published_at = store::find_notice(conn, &key, &version)?
                    .ok_or(ConsentError::NotFound("notice"))?;
                Ok((version, created, published_at))
            })
            .await
    }
}

/// The purpose `key` and its notices.
pub fn load(
    conn: &mut diesel::PgConnection,
    key: &str,
) -> Result<Option<StoredPurpose>, ConsentError> {
    store::find_purpose(conn, key)?
        .map(|row| load_row(conn, row))
        .transpose()
}

fn load_row(
    conn: &mut diesel::PgConnection,
    row: PurposeRow,
) -> Result<StoredPurpose, ConsentError> {
    let notice_versions = store::list_notice_versions(conn, &row.key)?;
    let created_at = row.created_at;
    Ok(StoredPurpose {
        purpose: purpose_from_row(row)?,
        created_at,
        notice_versions,
    })
}
