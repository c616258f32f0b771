//! What a change at profiles does to the projection: a customer appears, changes their
//! attributes, buys, returns, visits, is merged into another, restricted, or erased.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use ecrm_platform::money::convert;
use ecrm_platform::profiles_feed::ChangeSink;
use ecrm_platform::time::from_timestamp;
use ecrm_proto::ecrm::profiles::v1 as pb;
use uuid::Uuid;

use super::attributes;
use super::facts::{self, OrderLineRow, SurveyAnswerRow};
use super::store::{self, OrderRow};
use crate::config::Rates;
use crate::error::SegmentationError;
use crate::rfm::store as rfm_store;
use crate::segments::facts::{ORDER_FIELDS, VISIT_FIELDS};
use crate::segments::maintain::{Maintainer, Touched};
use crate::segments::members::Reason;

/// Segmentation's side of the profiles feed.
#[derive(Debug, Clone)]
pub struct Projection {
    rates: Rates,
    memberships: Arc<Maintainer>,
}

impl Projection {
    pub fn new(rates: Rates, memberships: Arc<Maintainer>) -> Self {
        Self { rates, memberships }
    }

    /// Applies one change in the caller's transaction, noting in `touched` whose facts it
    /// may have moved.
    pub fn apply(
        &self,
        conn: &mut PgConnection,
        change: &pb::Change,
        touched: &mut HashMap<Uuid, Touched>,
    ) -> Result<(), SegmentationError> {
        let subject = uuid(&change.subject_id)?;
        let at = change
            .occurred_at
            .as_ref()
            .and_then(from_timestamp)
            .ok_or(SegmentationError::Corrupt)?;
        match change.kind() {
            pb::ChangeKind::Created => {
                store::insert_customer(conn, subject, at)?;
                attributes::replace(conn, subject, &attributes::from_change(change))?;
                touch(touched, subject, Touched::All);
            }
            pb::ChangeKind::Updated => {
                // A customer created before the feed's oldest change still held.
                let created = store::insert_customer(conn, subject, at)?;
                let moved = attributes::replace(conn, subject, &attributes::from_change(change))?;
                if created {
                    touch(touched, subject, Touched::All);
                } else if moved {
                    touch(touched, subject, Touched::Attributes);
                }
            }
            pb::ChangeKind::InteractionRecorded => {
                // A customer created before the feed's oldest change still held.
                if store::insert_customer(conn, subject, at)? {
                    touch(touched, subject, Touched::All);
                }
                if let Some(interaction) = &change.interaction {
                    touch(
                        touched,
                        subject,
                        self.interaction(conn, subject, interaction, at)?,
                    );
                }
            }
            pb::ChangeKind::Merged => {
                let merged = uuid(&change.merged_subject_id)?;
                // The survivor keeps its own attributes and takes the merged customer's for
                // the keys it lacks, as profiles does.
                store::merge(conn, subject, merged)?;
                // Scored apart, they are scored together at the next computation.
                rfm_store::delete_by_subject(conn, merged)?;
                self.memberships.forget(conn, merged, Reason::Merged)?;
                touched.remove(&merged);
                touch(touched, subject, Touched::All);
            }
            pb::ChangeKind::Restricted => {
                store::update_restricted(conn, subject, change.restricted)?;
                if change.restricted {
                    rfm_store::delete_by_subject(conn, subject)?;
                }
                touch(touched, subject, Touched::All);
            }
            pb::ChangeKind::Erased => {
                store::delete_subject(conn, subject)?;
                rfm_store::delete_by_subject(conn, subject)?;
                self.memberships.forget(conn, subject, Reason::Erased)?;
                touched.remove(&subject);
            }
            pb::ChangeKind::Unspecified => {}
        }
        Ok(())
    }

    /// Applies the changes, then evaluates the customers they touched as of `now` for the
    /// segments reading what moved, all in the caller's transaction.
    pub fn apply_at(
        &self,
        conn: &mut PgConnection,
        changes: &[pb::Change],
        now: DateTime<Utc>,
    ) -> Result<(), SegmentationError> {
        // A subject erased here stays erased: a change recorded before its erasure at profiles
        // but read after the erasure here (followers read ahead) would bring its data back.
        let named: Vec<Uuid> = changes.iter().flat_map(subjects_named).collect();
        let erased: HashSet<Uuid> = store::list_erased(conn, &named)?.into_iter().collect();
        let mut touched = HashMap::new();
        for change in changes {
            let stale = change.kind() != pb::ChangeKind::Erased
                && subjects_named(change).any(|id| erased.contains(&id));
            if !stale {
                self.apply(conn, change, &mut touched)?;
            }
        }
        self.memberships.evaluate_touched(conn, &touched, now)
    }

    fn interaction(
        &self,
        conn: &mut PgConnection,
        subject: Uuid,
        interaction: &pb::InteractionSummary,
        recorded: DateTime<Utc>,
    ) -> Result<Touched, SegmentationError> {
        let at = interaction
            .occurred_at
            .as_ref()
            .and_then(from_timestamp)
            .unwrap_or(recorded);
        match interaction.kind() {
            kind @ (pb::InteractionKind::Order | pb::InteractionKind::Return) => {
                let money = interaction.amount.clone().unwrap_or_default();
                let row = OrderRow {
                    interaction_id: uuid(&interaction.interaction_id)?,
                    subject_id: subject,
                    kind: if kind == pb::InteractionKind::Order {
                        "order"
                    } else {
                        "return"
                    }
                    .to_owned(),
                    order_id: interaction.order_id.clone(),
                    occurred_at: at,
                    amount_minor: money.amount_minor,
                    reporting_minor: self.rates.rate(&money.currency).map(|rate| {
                        convert(
                            money.amount_minor,
                            &money.currency,
                            rate,
                            &self.rates.reporting,
                        )
                    }),
                    currency: money.currency,
                };
                if store::insert_order(conn, &row)? {
                    store::add_to_aggregates(conn, &row, kind == pb::InteractionKind::Return)?;
                    facts::insert_order_lines(conn, &order_lines(&row, &interaction.products))?;
                    return Ok(Touched::Fields(&ORDER_FIELDS));
                }
                Ok(Touched::Fields(&[]))
            }
            pb::InteractionKind::PageView => {
                store::add_view(conn, subject, at)?;
                Ok(Touched::Fields(&VISIT_FIELDS))
            }
            pb::InteractionKind::ProductView => {
                store::add_view(conn, subject, at)?;
                for product in interaction
                    .products
                    .iter()
                    .filter(|p| !p.product_id.is_empty())
                {
                    facts::add_product_view(conn, subject, &product.product_id, at.date_naive())?;
                }
                Ok(Touched::Fields(&VISIT_FIELDS))
            }
            pb::InteractionKind::SurveyAnswer => {
                store::touch_interaction(conn, subject, at)?;
                facts::insert_survey_answer(
                    conn,
                    &SurveyAnswerRow {
                        interaction_id: uuid(&interaction.interaction_id)?,
                        subject_id: subject,
                        occurred_at: at,
                        satisfaction: score(interaction.satisfaction, 1, 5),
                        nps: interaction.nps.and_then(|nps| score(nps, 0, 10)),
                    },
                )?;
                Ok(Touched::Fields(&[]))
            }
            _ => {
                store::touch_interaction(conn, subject, at)?;
                Ok(Touched::Fields(&[]))
            }
        }
    }
}

/// The subject a change is about, and the one merged into it.
fn subjects_named(change: &pb::Change) -> impl Iterator<Item = Uuid> + '_ {
    [&change.subject_id, &change.merged_subject_id]
        .into_iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
}

/// Notes that `what` of `subject`'s facts may have moved.
fn touch(touched: &mut HashMap<Uuid, Touched>, subject: Uuid, what: Touched) {
    touched
        .entry(subject)
        .and_modify(|t| *t = t.and(what))
        .or_insert(what);
}

/// The lines of an order or a return: products with an id and a quantity of at least one.
fn order_lines(order: &OrderRow, products: &[pb::ProductLine]) -> Vec<OrderLineRow> {
    products
        .iter()
        .filter(|p| !p.product_id.is_empty())
        .filter_map(|p| Some((p, i32::try_from(p.quantity).ok().filter(|q| *q > 0)?)))
        .zip(0..)
        .map(|((product, quantity), line)| OrderLineRow {
            interaction_id: order.interaction_id,
            line,
            subject_id: order.subject_id,
            kind: order.kind.clone(),
            product_id: product.product_id.clone(),
            category: product.category.clone(),
            quantity,
            occurred_at: order.occurred_at,
        })
        .collect()
}

/// A survey score within `min..=max`; anything else (0 for not asked) is no score.
fn score(value: u32, min: u32, max: u32) -> Option<i16> {
    (min..=max)
        .contains(&value)
        .then(|| i16::try_from(value).ok())
        .flatten()
}

fn uuid(value: &str) -> Result<Uuid, SegmentationError> {
    Uuid::parse_str(value).map_err(|_| SegmentationError::Corrupt)
}

impl ChangeSink for Projection {
    type Error = SegmentationError;

    fn kinds(&self) -> Vec<pb::ChangeKind> {
        vec![
            pb::ChangeKind::Created,
            pb::ChangeKind::Updated,
            pb::ChangeKind::InteractionRecorded,
            pb::ChangeKind::Merged,
            pb::ChangeKind::Restricted,
            pb::ChangeKind::Erased,
        ]
    }

    /// Applies the changes, then evaluates the customers they touched for the segments
    /// reading what moved, all in the caller's transaction.
    fn apply(
        &self,
        conn: &mut PgConnection,
        changes: &[pb::Change],
    ) -> Result<(), SegmentationError> {
        self.apply_at(conn, changes, Utc::now())
    }

    fn committed(&self) {
        self.memberships.changed.notify_waiters();
    }
}
