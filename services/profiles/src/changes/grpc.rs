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
use crate::error::ProfilesError;
use crate::interactions::domain::INTERACTION_TABLE;
use crate::interactions::grpc::{channel_to_proto, kind_to_proto};
use crate::interactions::store as interaction_store;
use crate::keys::{self, SubjectKeys};

/// Changes read per query.
const BATCH: usize = 500;

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
    /// products and scores opened with the keys of the batch's subjects (read at once).
    pub async fn read(
        &self,
        cursor: Cursor,
        kinds: Vec<&'static str>,
        limit: i64,
    ) -> Result<Vec<(Change, Option<pb::InteractionSummary>)>, ProfilesError> {
        let subject_keys = self.keys.clone();
        self.db
            .run(move |conn| {
                let rows = store::list_after(conn, cursor.tx, cursor.seq, &kinds, limit)?;
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
                        let summary = row
                            .interaction_id
                            .and_then(|id| interactions.get(&id))
                            .cloned();
                        Ok((
                            Change {
                                cursor: Cursor {
                                    tx: row.tx,
                                    seq: row.seq,
                                },
                                kind: ChangeKind::parse(&row.kind).ok_or(ProfilesError::Corrupt)?,
                                subject_id: row.subject_id,
                                occurred_at: row.occurred_at,
                                merged_subject_id: row.merged_subject_id,
                                restricted: row.restricted,
                            },
                            summary,
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
                    .map(|(change, interaction)| {
                        (
                            change.cursor,
                            pb::WatchChangesResponse {
                                change: Some(change_to_proto(change, interaction)),
                            },
                        )
                    })
                    .collect())
            }
        })))
    }
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

pub fn change_to_proto(change: Change, interaction: Option<pb::InteractionSummary>) -> pb::Change {
    pb::Change {
        cursor: change.cursor.encode(),
        kind: change_kind_to_proto(change.kind).into(),
        subject_id: change.subject_id.to_string(),
        occurred_at: Some(to_timestamp(change.occurred_at)),
        merged_subject_id: change
            .merged_subject_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        restricted: change.restricted.unwrap_or_default(),
        interaction,
    }
}
