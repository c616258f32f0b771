//! Interaction kinds, channels and retention, and recording a batch of interactions.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use ecrm_crypto::{BlindIndexKey, DataKey};
use ecrm_platform::Db;
use uuid::Uuid;

use super::store::{self, NewInteractionRow};
use crate::access_log::{self, Action};
use crate::caller::Caller;
use crate::changes::domain::{ChangeKind, ChangeSignal, NewChange};
use crate::changes::store as change_store;
use crate::error::ProfilesError;
use crate::identifiers::domain::{IdentifierKind, NewIdentifier};
use crate::identifiers::store as identifier_store;
use crate::keys::{self, SubjectKeys};
use crate::profiles::domain::{
    SubjectLookup, attach_identifier, check_readable, create_subject, resolve, run_resolving,
};
use crate::profiles::store::{self as profile_store, ProfileRow};

/// The table name sealed payloads are bound to.
pub const INTERACTION_TABLE: &str = "interaction";
/// Where profiles created by an interaction say they came from.
const INTERACTION_SOURCE: &str = "interactions";
const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InteractionKind {
    PageView,
    ProductView,
    CartAdd,
    Order,
    Return,
    SupportTicket,
    CampaignResponse,
    SurveyAnswer,
}

impl InteractionKind {
    pub const ALL: [InteractionKind; 8] = [
        InteractionKind::PageView,
        InteractionKind::ProductView,
        InteractionKind::CartAdd,
        InteractionKind::Order,
        InteractionKind::Return,
        InteractionKind::SupportTicket,
        InteractionKind::CampaignResponse,
        InteractionKind::SurveyAnswer,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            InteractionKind::PageView => "page_view",
            InteractionKind::ProductView => "product_view",
            InteractionKind::CartAdd => "cart_add",
            InteractionKind::Order => "order",
            InteractionKind::Return => "return",
            InteractionKind::SupportTicket => "support_ticket",
            InteractionKind::CampaignResponse => "campaign_response",
            InteractionKind::SurveyAnswer => "survey_answer",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == stored)
    }

    /// How long an interaction of this kind is kept after it occurred.
    pub const fn retention(self) -> Duration {
        match self {
            // Audience measurement and browsing: 13 months (CNIL guidance on trackers).
            InteractionKind::PageView | InteractionKind::ProductView | InteractionKind::CartAdd => {
                Duration::from_secs(395 * DAY.as_secs())
            }
            // Commercial documents: 10 years (French Commercial Code art. L123-22).
            InteractionKind::Order | InteractionKind::Return => {
                Duration::from_secs(3653 * DAY.as_secs())
            }
            // Customer relationship: 3 years after the contact.
            InteractionKind::SupportTicket
            | InteractionKind::CampaignResponse
            | InteractionKind::SurveyAnswer => Duration::from_secs(1096 * DAY.as_secs()),
        }
    }

    /// Orders and returns are accounting records: erasure keeps their amounts, unlinked.
    pub const fn is_accounting_record(self) -> bool {
        matches!(self, InteractionKind::Order | InteractionKind::Return)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Web,
    App,
    Email,
    Phone,
    Store,
    Partner,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Web,
        Channel::App,
        Channel::Email,
        Channel::Phone,
        Channel::Store,
        Channel::Partner,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Email => "email",
            Channel::Phone => "phone",
            Channel::Store => "store",
            Channel::Partner => "partner",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == stored)
    }
}

/// An order's or a return's amount, kept in clear for accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
}

/// A validated interaction, its payload already encoded (sealed when stored).
#[derive(Debug, Clone)]
pub struct NewInteraction {
    pub event_id: String,
    pub subject: SubjectLookup,
    pub kind: InteractionKind,
    pub channel: Channel,
    pub occurred_at: DateTime<Utc>,
    pub amount: Option<Amount>,
    pub payload: Vec<u8>,
    /// The request path of this interaction, for errors found while storing it.
    pub field: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub recorded: u64,
    pub duplicates: u64,
}

/// A stored interaction, opened.
#[derive(Debug, Clone)]
pub struct StoredInteraction {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub kind: InteractionKind,
    pub payload: Vec<u8>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Interactions {
    db: Db,
    keys: SubjectKeys,
    lookup_key: BlindIndexKey,
    signal: ChangeSignal,
}

impl Interactions {
    pub fn new(db: Db, keys: SubjectKeys, lookup_key: BlindIndexKey, signal: ChangeSignal) -> Self {
        Self {
            db,
            keys,
            lookup_key,
            signal,
        }
    }

    /// Stores one batch in one transaction: all of it, or nothing of it.
    pub async fn record(
        &self,
        caller: Caller,
        batch: Vec<NewInteraction>,
    ) -> Result<Recorded, ProfilesError> {
        if batch.is_empty() {
            return Ok(Recorded::default());
        }
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        let batch = std::sync::Arc::new(batch);
        let recorded = run_resolving(&self.db, move |conn| {
            record_batch(conn, &keys, &lookup_key, &caller, &batch)
        })
        .await?;
        if recorded.recorded > 0 {
            self.signal.notify_waiters();
        }
        Ok(recorded)
    }

    /// A subject's interactions, newest first.
    pub async fn list(
        &self,
        caller: Caller,
        subject: Uuid,
        filter: ListFilter,
    ) -> Result<(Vec<StoredInteraction>, Option<(DateTime<Utc>, Uuid)>), ProfilesError> {
        let purpose = caller.read_purpose()?.clone();
        let keys = self.keys.clone();
        let lookup_key = self.lookup_key.clone();
        self.db
            .run(move |conn| {
                let row = resolve(conn, &lookup_key, &SubjectLookup::Id(subject))?
                    .ok_or(ProfilesError::NotFound("profile"))?;
                if let Some(partner) = caller.partner()
                    && !identifier_store::partner_has_subject(conn, partner, row.subject_id)?
                {
                    return Err(ProfilesError::NotFound("profile"));
                }
                check_readable(&row, &purpose)?;
                let kinds: Vec<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
                let mut rows = store::list_by_subject(
                    conn,
                    row.subject_id,
                    caller.partner(),
                    &kinds,
                    filter.since,
                    filter.until,
                    filter.after,
                    i64::from(filter.size) + 1,
                )?;
                let next = if rows.len() > filter.size as usize {
                    rows.truncate(filter.size as usize);
                    rows.last().map(|r| (r.occurred_at, r.id))
                } else {
                    None
                };
                access_log::record(conn, &caller, Action::Read, &[row.subject_id])?;
                let key = keys.get(conn, row.subject_id)?;
                let interactions = rows
                    .into_iter()
                    .map(|r| open_row(&key, r, row.subject_id))
                    .collect::<Result<_, _>>()?;
                Ok((interactions, next))
            })
            .await
    }

    /// Deletes interactions past their retention, in chunks; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, ProfilesError> {
        const CHUNK: i64 = 10_000;
        let mut total = 0;
        loop {
            let deleted = self
                .db
                .run(|conn| Ok::<_, ProfilesError>(store::delete_expired(conn, Utc::now(), CHUNK)?))
                .await?;
            total += deleted;
            if (deleted as i64) < CHUNK {
                return Ok(total);
            }
        }
    }
}

/// Which interactions to list.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub kinds: Vec<InteractionKind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub size: u32,
}

pub fn open_row(
    key: &DataKey,
    row: store::InteractionRow,
    subject: Uuid,
) -> Result<StoredInteraction, ProfilesError> {
    let payload = match &row.sealed_payload {
        Some(sealed) => keys::open(key, INTERACTION_TABLE, row.id, sealed)?,
        None => Vec::new(),
    };
    Ok(StoredInteraction {
        id: row.id,
        subject_id: subject,
        kind: InteractionKind::parse(&row.kind).ok_or(ProfilesError::Corrupt)?,
        payload,
        recorded_at: row.recorded_at,
    })
}

fn record_batch(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    lookup_key: &BlindIndexKey,
    caller: &Caller,
    batch: &[NewInteraction],
) -> Result<Recorded, ProfilesError> {
    // The subjects the batch names, and their keys, read a few queries for the whole batch;
    // only identifiers no profile holds yet are handled one by one (each creates a profile).
    let mut subjects = resolve_batch(conn, lookup_key, caller, batch)?;
    let known: Vec<Uuid> = subjects.values().copied().collect();
    let mut data_keys: HashMap<Uuid, DataKey> = keys.find_many(conn, &known)?;
    let mut created = Vec::new();
    let mut rows = Vec::with_capacity(batch.len());
    let mut ids = Vec::with_capacity(batch.len());
    for interaction in batch {
        let cache_key = batch_key(lookup_key, &interaction.subject);
        let subject = match subjects.get(&cache_key) {
            Some(subject) => *subject,
            None => {
                let subject = subject_of(
                    conn,
                    keys,
                    lookup_key,
                    caller,
                    interaction,
                    &mut data_keys,
                    &mut created,
                )?;
                subjects.insert(cache_key, subject);
                subject
            }
        };
        let key = match data_keys.entry(subject) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(keys.get(conn, subject)?)
            }
        };
        let id = Uuid::now_v7();
        let sealed = keys::seal(key, INTERACTION_TABLE, id, &interaction.payload)?;
        ids.push((id, subject));
        rows.push((id, subject, sealed));
    }
    let new_rows: Vec<NewInteractionRow<'_>> = batch
        .iter()
        .zip(rows)
        .map(|(interaction, (id, subject, sealed))| NewInteractionRow {
            id,
            event_id: &interaction.event_id,
            subject_id: subject,
            kind: interaction.kind.as_str(),
            channel: interaction.channel.as_str(),
            occurred_at: interaction.occurred_at,
            order_id: interaction.amount.as_ref().map(|a| a.order_id.as_str()),
            amount_minor: interaction.amount.as_ref().map(|a| a.amount_minor),
            currency: interaction.amount.as_ref().map(|a| a.currency.as_str()),
            sealed_payload: sealed,
            expires_at: interaction.occurred_at
                + chrono::Duration::from_std(interaction.kind.retention())
                    .unwrap_or(chrono::Duration::MAX),
        })
        .collect();
    let inserted: HashSet<Uuid> =
        store::insert_new(conn, caller.partner().unwrap_or_default(), &new_rows)?
            .into_iter()
            .collect();
    let mut feed: Vec<NewChange> = created
        .iter()
        .map(|subject| NewChange::of(ChangeKind::Created, *subject))
        .collect();
    let mut touched: Vec<Uuid> = Vec::new();
    let mut seen = HashSet::new();
    for (id, subject) in &ids {
        if inserted.contains(id) {
            feed.push(NewChange {
                interaction_id: Some(*id),
                ..NewChange::of(ChangeKind::InteractionRecorded, *subject)
            });
            if seen.insert(*subject) {
                touched.push(*subject);
            }
        }
    }
    change_store::record(conn, &feed)?;
    access_log::record(conn, caller, Action::Write, &touched)?;
    let recorded = inserted.len() as u64;
    Ok(Recorded {
        recorded,
        duplicates: batch.len() as u64 - recorded,
    })
}

/// How a batch names a subject: its id, or the blind index of the identifier.
fn batch_key(lookup_key: &BlindIndexKey, subject: &SubjectLookup) -> String {
    match subject {
        SubjectLookup::Id(id) => id.to_string(),
        SubjectLookup::Identifier(identifier) => identifier.lookup(lookup_key),
    }
}

/// The live subjects the batch names that exist already (and, for a partner, that it synced),
/// by [`batch_key`], as [`resolve`] would find them one by one: a merged subject resolves to
/// the profile it was merged into, an erased one to nothing.
fn resolve_batch(
    conn: &mut PgConnection,
    lookup_key: &BlindIndexKey,
    caller: &Caller,
    batch: &[NewInteraction],
) -> Result<HashMap<String, Uuid>, ProfilesError> {
    let mut named: HashMap<String, Uuid> = HashMap::new();
    let mut lookups: Vec<String> = Vec::new();
    for interaction in batch {
        match &interaction.subject {
            SubjectLookup::Id(id) => {
                named.insert(id.to_string(), *id);
            }
            SubjectLookup::Identifier(identifier) => lookups.push(identifier.lookup(lookup_key)),
        }
    }
    lookups.sort_unstable();
    lookups.dedup();
    if !lookups.is_empty() {
        named.extend(identifier_store::find_subjects_by_lookups(conn, &lookups)?);
    }
    // The subjects named and the profiles merged ones point to, locked in one pass (in id order,
    // so no deadlock with a merge) against a merge or erasure until the batch commits.
    let mut locked: Vec<Uuid> = named.values().copied().collect();
    locked.extend(
        profile_store::find_many(conn, &locked)?
            .iter()
            .filter_map(|row| row.merged_into),
    );
    locked.sort_unstable();
    locked.dedup();
    let rows: HashMap<Uuid, ProfileRow> = profile_store::lock_shared(conn, &locked)?
        .into_iter()
        .map(|row| (row.subject_id, row))
        .collect();
    // A subject merged since the first read into a profile not locked here is left to the
    // one-by-one path.
    let live_of = |subject: &Uuid| -> Option<Uuid> {
        let row = rows.get(subject)?;
        let row = match row.merged_into {
            Some(into) => rows.get(&into)?,
            None => row,
        };
        row.is_live().then_some(row.subject_id)
    };
    let live: HashMap<Uuid, Uuid> = locked
        .iter()
        .filter_map(|subject| live_of(subject).map(|live| (*subject, live)))
        .collect();
    let mut resolved: HashMap<String, Uuid> = named
        .into_iter()
        .filter_map(|(key, subject)| live.get(&subject).map(|live| (key, *live)))
        .collect();
    if let Some(partner) = caller.partner() {
        let subjects: Vec<Uuid> = resolved.values().copied().collect();
        let synced: HashSet<Uuid> = identifier_store::partner_subjects(conn, partner, &subjects)?
            .into_iter()
            .collect();
        resolved.retain(|_, subject| synced.contains(subject));
    }
    Ok(resolved)
}

/// The live subject an interaction names. A subject id must exist (and, for a partner, be one it
/// synced); an unknown identifier creates a profile.
fn subject_of(
    conn: &mut PgConnection,
    keys: &SubjectKeys,
    lookup_key: &BlindIndexKey,
    caller: &Caller,
    interaction: &NewInteraction,
    data_keys: &mut HashMap<Uuid, DataKey>,
    created: &mut Vec<Uuid>,
) -> Result<Uuid, ProfilesError> {
    let unknown =
        || ProfilesError::invalid(format!("{}.subject", interaction.field), "no such subject");
    if let Some(row) = resolve(conn, lookup_key, &interaction.subject)? {
        if let Some(partner) = caller.partner()
            && !identifier_store::partner_has_subject(conn, partner, row.subject_id)?
        {
            return Err(unknown());
        }
        return Ok(row.subject_id);
    }
    let SubjectLookup::Identifier(identifier) = &interaction.subject else {
        return Err(unknown());
    };
    if let Some(partner) = caller.partner()
        && (identifier.kind != IdentifierKind::PartnerReference
            || identifier.partner_id.as_deref() != Some(partner))
    {
        return Err(ProfilesError::invalid(
            format!("{}.subject", interaction.field),
            "partners name new customers by their own partner reference",
        ));
    }
    let (subject, key) = create_subject(conn, keys)?;
    let new = NewIdentifier {
        identifier: identifier.clone(),
        verified_at: None,
        verification_method: None,
    };
    attach_identifier(conn, lookup_key, &key, subject, &new, INTERACTION_SOURCE)?;
    data_keys.insert(subject, key);
    created.push(subject);
    Ok(subject)
}
