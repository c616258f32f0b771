//! Adding, lifting and listing suppressions, addresses reduced to their blind index first.

use chrono::Utc;
use ecrm_crypto::BlindIndexKey;
use ecrm_platform::Db;
use ecrm_platform::paging::Page;
use ecrm_proto::ecrm::common::v1::PageResponse;
use uuid::Uuid;

use super::address::{normalise_email, normalise_phone};
use super::store::{self, SuppressionRow};
use crate::error::OutboundError;
use crate::templates::domain::Channel;

const MAX_NOTE_CHARS: usize = 500;

/// What a suppression stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Marketing,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Marketing => "marketing",
        }
    }
}

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Bounced,
    Complained,
    Unsubscribed,
    Objected,
    Manual,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Unsubscribed => "unsubscribed",
            Self::Objected => "objected",
            Self::Manual => "manual",
        }
    }
}

pub struct Suppressions {
    db: Db,
    index_key: BlindIndexKey,
}

impl std::fmt::Debug for Suppressions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suppressions").finish_non_exhaustive()
    }
}

impl Suppressions {
    pub fn new(db: Db, index_key: BlindIndexKey) -> Self {
        Self { db, index_key }
    }

    /// The blind index of `address` on `channel`, once normalised; `field` names it in errors.
    pub fn index(
        &self,
        field: &str,
        channel: Channel,
        address: &str,
    ) -> Result<String, OutboundError> {
        let normal = match channel {
            Channel::Email => normalise_email(address)
                .ok_or_else(|| OutboundError::invalid(field, "not an email address"))?,
            Channel::Sms => normalise_phone(address).ok_or_else(|| {
                OutboundError::invalid(field, "not a phone number in international form (+33...)")
            })?,
            Channel::Webhook => {
                return Err(OutboundError::invalid(
                    "channel",
                    "CHANNEL_EMAIL or CHANNEL_SMS: webhooks have no address to suppress",
                ));
            }
        };
        // The channel is part of what is hashed: an address is one thing on one channel.
        Ok(self
            .index_key
            .index(format!("{}:{normal}", channel.as_str()).as_bytes()))
    }

    /// Suppresses `address`; the same suppression again returns the one stored, unchanged.
    pub async fn add(
        &self,
        by: String,
        channel: Channel,
        address: &str,
        scope: Scope,
        reason: Reason,
        note: String,
    ) -> Result<(SuppressionRow, bool), OutboundError> {
        if note.chars().count() > MAX_NOTE_CHARS {
            return Err(OutboundError::invalid(
                "note",
                format!("at most {MAX_NOTE_CHARS} characters"),
            ));
        }
        let row = SuppressionRow {
            id: Uuid::now_v7(),
            channel: channel.as_str().to_owned(),
            address_index: self.index("address", channel, address)?,
            scope: scope.as_str().to_owned(),
            reason: reason.as_str().to_owned(),
            note,
            created_by: by,
            created_at: Utc::now(),
        };
        self.db
            .run(move |conn| Ok::<_, OutboundError>(store::insert(conn, &row)?))
            .await
    }

    /// Lifts the suppression of `address` on `channel` with `scope`.
    pub async fn remove(
        &self,
        channel: Channel,
        address: &str,
        scope: Scope,
    ) -> Result<(), OutboundError> {
        let index = self.index("address", channel, address)?;
        let removed = self
            .db
            .run(move |conn| {
                Ok::<_, OutboundError>(store::delete(
                    conn,
                    channel.as_str(),
                    &index,
                    scope.as_str(),
                )?)
            })
            .await?;
        if removed {
            Ok(())
        } else {
            Err(OutboundError::NotFound("suppression"))
        }
    }

    /// A page of suppressions, newest first, of `channel` and `address` when given.
    pub async fn list(
        &self,
        channel: Option<Channel>,
        address: Option<&str>,
        page: Page,
    ) -> Result<(Vec<SuppressionRow>, PageResponse), OutboundError> {
        let index = match (address, channel) {
            (Some(address), Some(channel)) => Some(self.index("address", channel, address)?),
            (Some(_), None) => {
                return Err(OutboundError::invalid(
                    "channel",
                    "needed to look an address up",
                ));
            }
            (None, _) => None,
        };
        let rows = self
            .db
            .run(move |conn| {
                Ok::<_, OutboundError>(store::list(
                    conn,
                    channel.map(Channel::as_str),
                    index.as_deref(),
                    page.after,
                    page.limit(),
                )?)
            })
            .await?;
        Ok(page.finish(rows, |row| row.id))
    }
}
