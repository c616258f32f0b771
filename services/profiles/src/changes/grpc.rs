//! `WatchChanges`: the feed as a server stream that follows new changes until the caller or the
//! server goes away.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use ecrm_platform::Db;
use ecrm_platform::feed::{FollowOptions, follow};
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::profiles::v1 as pb;
use futures::Stream;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;

use super::domain::{Change, ChangeKind, ChangeSignal, Cursor, decode_cursor};
use super::store;
use crate::attributes::domain::{AttributeName, Attributes, Standard};
use crate::attributes::grpc as attribute_grpc;
use crate::attributes::store as attribute_store;
use crate::error::ProfilesError;
use crate::interactions::domain::INTERACTION_TABLE;
use crate::interactions::grpc::{channel_to_proto, kind_to_proto};
use crate::interactions::store as interaction_store;
use crate::keys::{self, SubjectKeys};
use crate::profiles::view;

/// Changes read per query.
const BATCH: usize = 500;
/// After a commit, how long a follower's stream lets other commits arrive before it reads: with
/// many writers committing batches at once, one read instead of one a commit.
const GATHER: Duration = Duration::from_millis(20);

pub type ChangeStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchChangesResponse, Status>> + Send>>;

pub fn change_kind_to_proto(kind: ChangeKind) -> pb::ChangeKind {
    match kind {
        ChangeKind::Created => pb::ChangeKind::Created,
        ChangeKind::Updated => pb::ChangeKind::Updated,
        ChangeKind::Merged => pb::ChangeKind::Merged,
        ChangeKind::Erased => pb::ChangeKind::Erased,
        ChangeKind::Restricted => pb::ChangeKind::Restricted,
        ChangeKind::InteractionRecorded => pb::ChangeKind::InteractionRecorded,
    }
}

fn change_kind_from_proto(value: i32, field: &str) -> Result<ChangeKind, ProfilesError> {
    match pb::ChangeKind::try_from(value) {
        Ok(pb::ChangeKind::Created) => Ok(ChangeKind::Created),
        Ok(pb::ChangeKind::Updated) => Ok(ChangeKind::Updated),
        Ok(pb::ChangeKind::Merged) => Ok(ChangeKind::Merged),
        Ok(pb::ChangeKind::Erased) => Ok(ChangeKind::Erased),
        Ok(pb::ChangeKind::Restricted) => Ok(ChangeKind::Restricted),
        Ok(pb::ChangeKind::InteractionRecorded) => Ok(ChangeKind::InteractionRecorded),
        _ => Err(ProfilesError::invalid(
            field,
            "a CHANGE_KIND other than UNSPECIFIED",
        )),
    }
}

/// The change feed, read from the `changes` table.
#[derive(Debug, Clone)]
pub struct Feed {
    db: Db,
    keys: SubjectKeys,
    signal: ChangeSignal,
    poll_interval: Duration,
    shutdown: CancellationToken,
}

impl Feed {
    pub fn new(
        db: Db,
        keys: SubjectKeys,
        signal: ChangeSignal,
        poll_interval: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            db,
            keys,
            signal,
            poll_interval,
            shutdown,
        }
    }

    /// Up to `limit` changes after `cursor`, with the summaries of recorded interactions, their
    /// products and scores, and the shared attributes of created and updated profiles, opened
    /// with the keys of the batch's subjects (read at once).
    pub async fn read(
        &self,
        cursor: Cursor,
        kinds: Vec<&'static str>,
        limit: i64,
    ) -> Result<Vec<(Change, Details)>, ProfilesError> {
        let subject_keys = self.keys.clone();
        self.db
            .run(move |conn| {
                let rows = store::list_after(conn, cursor.tx, cursor.seq, &kinds, limit)?;
                let mut profiles: Vec<Uuid> = rows
                    .iter()
                    .filter(|row| {
                        matches!(
                            ChangeKind::parse(&row.kind),
                            Some(ChangeKind::Created | ChangeKind::Updated)
                        )
                    })
                    .map(|row| row.subject_id)
                    .collect();
                profiles.sort_unstable();
                profiles.dedup();
                let attributes = shared_attributes(conn, &subject_keys, &profiles)?;
                let ids: Vec<Uuid> = rows.iter().filter_map(|r| r.interaction_id).collect();
                let interactions: HashMap<Uuid, pb::InteractionSummary> = if ids.is_empty() {
                    HashMap::new()
                } else {
                    let found = interaction_store::find_many(conn, &ids)?;
                    // The payload is sealed with the key of the subject holding it now (merges
                    // reseal it); an erased subject has no key, and so no details.
                    let mut subjects: Vec<Uuid> = found
                        .iter()
                        .filter(|row| row.sealed_payload.is_some())
                        .filter_map(|row| row.subject_id)
                        .collect();
                    subjects.sort_unstable();
                    subjects.dedup();
                    let data_keys = subject_keys.find_many(conn, &subjects)?;
                    found
                        .iter()
                        .map(|row| {
                            let opened = row
                                .subject_id
                                .and_then(|subject| data_keys.get(&subject))
                                .and_then(|key| opened_payload(key, row));
                            (row.id, summary(row, opened.as_ref()))
                        })
                        .collect()
                };
                rows.into_iter()
                    .map(|row| {
                        let kind = ChangeKind::parse(&row.kind).ok_or(ProfilesError::Corrupt)?;
                        let interaction = row
                            .interaction_id
                            .and_then(|id| interactions.get(&id))
                            .cloned();
                        let attributes = matches!(kind, ChangeKind::Created | ChangeKind::Updated)
                            .then(|| attributes.get(&row.subject_id).cloned().unwrap_or_default());
                        Ok((
                            Change {
                                cursor: Cursor {
                                    tx: row.tx,
                                    seq: row.seq,
                                },
                                kind,
                                subject_id: row.subject_id,
                                occurred_at: row.occurred_at,
                                merged_subject_id: row.merged_subject_id,
                                restricted: row.restricted,
                            },
                            Details {
                                interaction,
                                attributes,
                            },
                        ))
                    })
                    .collect()
            })
            .await
    }

    pub fn watch(&self, request: &pb::WatchChangesRequest) -> Result<ChangeStream, ProfilesError> {
        let cursor = decode_cursor("cursor", &request.cursor)?;
        let kinds: Vec<&'static str> = request
            .kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                change_kind_from_proto(*k, &format!("kinds[{i}]")).map(ChangeKind::as_str)
            })
            .collect::<Result<_, _>>()?;
        let options = FollowOptions {
            signal: self.signal.clone(),
            poll_interval: self.poll_interval,
            gather: GATHER,
            shutdown: self.shutdown.clone(),
            batch: BATCH,
        };
        let feed = self.clone();
        Ok(Box::pin(follow(cursor, options, move |after, limit| {
            let (feed, kinds) = (feed.clone(), kinds.clone());
            async move {
                let batch = feed
                    .read(after, kinds, i64::try_from(limit).unwrap_or(i64::MAX))
                    .await?;
                Ok(batch
                    .into_iter()
                    .map(|(change, details)| {
                        (
                            change.cursor,
                            pb::WatchChangesResponse {
                                change: Some(change_to_proto(change, details)),
                            },
                        )
                    })
                    .collect())
            }
        })))
    }
}

/// What the feed reads beside a stored change, from the subject's data as it is now.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// For a recorded interaction.
    pub interaction: Option<pb::InteractionSummary>,
    /// For a created or updated profile (empty once erased or merged).
    pub attributes: Option<SharedAttributes>,
}

/// The attributes of a profile the feed shares: none that names or locates the person.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedAttributes {
    pub country: String,
    pub locale: String,
    pub custom: HashMap<String, pb::AttributeValue>,
}

/// Whether the feed shares an attribute: country, locale and custom attributes, never names,
/// birth date, address or time zone.
fn is_shared(name: &AttributeName) -> bool {
    matches!(
        name,
        AttributeName::Standard(Standard::Country | Standard::Locale) | AttributeName::Custom(_)
    )
}

/// The shared attributes of `subjects` (sorted, distinct), each opened with its subject's key;
/// a subject without a key (erased, merged) has none. Only shared attributes are opened.
fn shared_attributes(
    conn: &mut diesel::PgConnection,
    subject_keys: &SubjectKeys,
    subjects: &[Uuid],
) -> Result<HashMap<Uuid, SharedAttributes>, ProfilesError> {
    if subjects.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<attribute_store::AttributeValueRow> =
        attribute_store::list_current_by_subjects(conn, subjects)?
            .into_iter()
            .filter(|row| AttributeName::parse(&row.name).is_some_and(|name| is_shared(&name)))
            .collect();
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let data_keys = subject_keys.find_many(conn, subjects)?;
    let mut opened: HashMap<Uuid, Attributes> = HashMap::new();
    for row in &rows {
        let Some(key) = data_keys.get(&row.subject_id) else {
            continue;
        };
        match view::open_attribute(key, row) {
            Ok((name, Some(value))) => {
                opened
                    .entry(row.subject_id)
                    .or_default()
                    .insert(name, value);
            }
            Ok((_, None)) => {}
            // The feed goes on: one unreadable value must not stop every consumer.
            Err(_) => tracing::warn!(attribute.id = %row.id, "attribute value does not open"),
        }
    }
    Ok(opened
        .into_iter()
        .map(|(subject, attributes)| {
            let proto = attribute_grpc::to_proto(&attributes);
            (
                subject,
                SharedAttributes {
                    country: proto.country,
                    locale: proto.locale,
                    custom: proto.custom,
                },
            )
        })
        .collect())
}

/// The interaction as recorded, when its payload opens with `key` and decodes.
fn opened_payload(
    key: &ecrm_crypto::DataKey,
    row: &interaction_store::InteractionRow,
) -> Option<pb::Interaction> {
    let sealed = row.sealed_payload.as_ref()?;
    let decoded = keys::open(key, INTERACTION_TABLE, row.id, sealed)
        .ok()
        .and_then(|payload| pb::Interaction::decode(payload.as_slice()).ok());
    if decoded.is_none() {
        // The feed goes on: one unreadable payload must not stop every consumer.
        tracing::warn!(interaction.id = %row.id, "interaction payload does not open");
    }
    decoded
}

fn product_line(product_id: &str, category: &str, quantity: u32) -> pb::ProductLine {
    pb::ProductLine {
        product_id: product_id.to_owned(),
        category: category.to_owned(),
        quantity,
    }
}

fn line_items(items: &[pb::LineItem]) -> Vec<pb::ProductLine> {
    items
        .iter()
        .map(|item| product_line(&item.product_id, &item.category, item.quantity))
        .collect()
}

/// The summary of a stored interaction; the products and survey scores come from `opened`,
/// its payload, when it could be read.
pub fn summary(
    row: &interaction_store::InteractionRow,
    opened: Option<&pb::Interaction>,
) -> pb::InteractionSummary {
    use pb::interaction::Details;
    let (products, satisfaction, nps) = match opened.and_then(|i| i.details.as_ref()) {
        Some(Details::ProductView(view)) => (
            vec![product_line(&view.product_id, &view.category, 1)],
            0,
            None,
        ),
        Some(Details::CartAdd(add)) => (
            vec![product_line(&add.product_id, "", add.quantity)],
            0,
            None,
        ),
        Some(Details::Order(order)) => (line_items(&order.line_items), 0, None),
        Some(Details::ProductReturn(back)) => (line_items(&back.line_items), 0, None),
        Some(Details::SurveyAnswer(answer)) => (Vec::new(), answer.satisfaction, answer.nps),
        _ => (Vec::new(), 0, None),
    };
    pb::InteractionSummary {
        products,
        satisfaction,
        nps,
        interaction_id: row.id.to_string(),
        kind: kind_to_proto(&row.kind).into(),
        channel: channel_to_proto(&row.channel).into(),
        occurred_at: Some(to_timestamp(row.occurred_at)),
        order_id: row.order_id.clone().unwrap_or_default(),
        amount: row
            .amount_minor
            .zip(row.currency.clone())
            .map(|(amount_minor, currency)| common::Money {
                amount_minor,
                currency,
            }),
    }
}

pub fn change_to_proto(change: Change, details: Details) -> pb::Change {
    let shared = details.attributes.unwrap_or_default();
    pb::Change {
        country: shared.country,
        locale: shared.locale,
        custom: shared.custom,
        cursor: change.cursor.encode(),
        kind: change_kind_to_proto(change.kind).into(),
        subject_id: change.subject_id.to_string(),
        occurred_at: Some(to_timestamp(change.occurred_at)),
        merged_subject_id: change
            .merged_subject_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        restricted: change.restricted.unwrap_or_default(),
        interaction: details.interaction,
    }
}
