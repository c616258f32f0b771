//! Export, erasure and restriction of one subject's data: the projection and the scores.
//! Tiers are replayed from the orders when asked and never stored per customer, so erasing
//! the orders erases them and restricting the customer hides them: only export reads them.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ecrm_platform::privacy::ExportRecord;
use ecrm_platform::{Db, feed_follower, profiles_feed};
use serde_json::json;
use uuid::Uuid;

use crate::error::SegmentationError;
use crate::projection::{attributes, facts, store};
use crate::rfm::store as rfm_store;
use crate::schema::segmentation::erasures;
use crate::segments::facts as segment_facts;
use crate::segments::maintain::{Maintainer, Touched};
use crate::segments::members::{self, Reason};
use crate::tiers::domain::{self as tiers, Program};
use crate::tiers::store as tiers_store;

/// What an erasure deleted, per category, and when it was first carried out.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub erased: Vec<(String, u64)>,
    pub completed_at: DateTime<Utc>,
    pub replayed: bool,
}

#[derive(Debug, Clone)]
pub struct Privacy {
    db: Db,
    memberships: Arc<Maintainer>,
}

impl Privacy {
    pub fn new(db: Db, memberships: Arc<Maintainer>) -> Self {
        Self { db, memberships }
    }

    /// Every record about the subject: its aggregates, profile attributes, orders and returns
    /// and their lines, visit days, product views, survey scores, RFM scores, its tier in every
    /// program now, and the segments it is in with the reasons.
    pub async fn export(&self, subject: Uuid) -> Result<Vec<ExportRecord>, SegmentationError> {
        let memberships = self.memberships.clone();
        self.db
            .run(move |conn| {
                let mut records = Vec::new();
                let customer = store::find_customer(conn, subject)?;
                if let Some(c) = &customer {
                    records.push(ExportRecord {
                        category: "segmentation.aggregates",
                        record_id: c.subject_id.to_string(),
                        document: json!({
                            "subject_id": c.subject_id,
                            "customer_since": c.created_at,
                            "restricted": c.restricted,
                            "first_purchase_at": c.first_purchase_at,
                            "last_purchase_at": c.last_purchase_at,
                            "orders": c.order_count,
                            "returns": c.return_count,
                            "monetary_minor": c.monetary_minor,
                            "orders_not_valued": c.unvalued_count,
                            "visit_days": c.visit_days,
                            "last_visit_at": c.last_visit_at,
                            "last_interaction_at": c.last_interaction_at,
                            "updated_at": c.updated_at,
                        }),
                    });
                }
                for (field, value) in attributes::list_by_subject(conn, subject)? {
                    records.push(ExportRecord {
                        category: "segmentation.attributes",
                        record_id: format!("{subject}/{field}"),
                        document: json!({ "field": field, "value": value }),
                    });
                }
                let orders = store::list_orders(conn, subject)?;
                for o in &orders {
                    records.push(ExportRecord {
                        category: "segmentation.orders",
                        record_id: o.interaction_id.to_string(),
                        document: json!({
                            "kind": o.kind,
                            "order_id": o.order_id,
                            "occurred_at": o.occurred_at,
                            "amount_minor": o.amount_minor,
                            "currency": o.currency,
                            "reporting_minor": o.reporting_minor,
                        }),
                    });
                }
                for l in facts::list_order_lines(conn, subject)? {
                    records.push(ExportRecord {
                        category: "segmentation.order_lines",
                        record_id: format!("{}/{}", l.interaction_id, l.line),
                        document: json!({
                            "kind": l.kind,
                            "product_id": l.product_id,
                            "category": l.category,
                            "quantity": l.quantity,
                            "occurred_at": l.occurred_at,
                        }),
                    });
                }
                for score in rfm_store::list_by_subject(conn, subject)? {
                    records.push(ExportRecord {
                        category: "segmentation.rfm",
                        record_id: format!("{}/{}", score.job_id, score.subject_id),
                        document: json!({
                            "computation": score.job_id,
                            "recency_days": score.recency_days,
                            "frequency": score.frequency,
                            "monetary_minor": score.monetary_minor,
                            "r": score.r,
                            "f": score.f,
                            "m": score.m,
                            "segment": score.segment,
                        }),
                    });
                }
                if let Some(customer) = &customer {
                    let now = Utc::now();
                    for row in tiers_store::list(conn)? {
                        let program = Program::try_from(row)?.definition;
                        // Restricted: no tier is computed (Art. 18), and the record says why.
                        let standing = (!customer.restricted)
                            .then(|| tiers::standing_of(&program, customer, &orders, now));
                        let name = |i: usize| program.tiers.get(i).map(|t| t.name.clone());
                        records.push(ExportRecord {
                            category: "segmentation.tiers",
                            record_id: format!("{}/{}", program.name, subject),
                            document: json!({
                                "program": program.name,
                                "as_of": now,
                                "restricted": customer.restricted,
                                "tier": standing.as_ref().and_then(|s| name(s.tier)),
                                "tier_index": standing.as_ref().map(|s| s.tier),
                                "measure": standing.as_ref().map(|s| s.measure),
                                "since": standing.as_ref().and_then(|s| s.since),
                                "kept_until": standing.as_ref().and_then(|s| s.kept_until),
                                "next_change_at": standing
                                    .as_ref()
                                    .and_then(|s| s.next_change.map(|(at, _)| at)),
                                "next_change_tier": standing
                                    .as_ref()
                                    .and_then(|s| s.next_change.and_then(|(_, i)| name(i))),
                            }),
                        });
                    }
                }
                for v in store::list_visits(conn, subject)? {
                    records.push(ExportRecord {
                        category: "segmentation.visits",
                        record_id: format!("{}/{}", v.subject_id, v.day),
                        document: json!({ "day": v.day, "views": v.views }),
                    });
                }
                for v in facts::list_product_views(conn, subject)? {
                    records.push(ExportRecord {
                        category: "segmentation.product_views",
                        record_id: format!("{}/{}/{}", v.subject_id, v.product_id, v.day),
                        document: json!({
                            "product_id": v.product_id,
                            "day": v.day,
                            "views": v.views,
                        }),
                    });
                }
                for a in facts::list_survey_answers(conn, subject)? {
                    records.push(ExportRecord {
                        category: "segmentation.survey_answers",
                        record_id: a.interaction_id.to_string(),
                        document: json!({
                            "occurred_at": a.occurred_at,
                            "satisfaction": a.satisfaction,
                            "nps": a.nps,
                        }),
                    });
                }
                records.extend(membership_records(conn, &memberships, subject)?);
                if let Some(objected_at) = store::find_objection(conn, subject)? {
                    records.push(ExportRecord {
                        category: "segmentation.objections",
                        record_id: subject.to_string(),
                        document: json!({
                            "objected_to": "profiling",
                            "objected_at": objected_at,
                        }),
                    });
                }
                Ok(records)
            })
            .await
    }

    /// Deletes everything about the subject; repeating `request` replays the first receipt.
    pub async fn erase(&self, subject: Uuid, request: Uuid) -> Result<Receipt, SegmentationError> {
        let memberships = self.memberships.clone();
        let schema = self.db.schema().to_owned();
        self.db
            .run(move |conn| {
                // After the feed batch in progress, and before the next: a batch read before the
                // erasure sees it recorded, and leaves the subject erased.
                feed_follower::lock_applying(conn, &schema, profiles_feed::FEED)?;
                let done: Option<(serde_json::Value, DateTime<Utc>)> = erasures::table
                    .find(request)
                    .select((erasures::receipt, erasures::completed_at))
                    .first(conn)
                    .optional()?;
                if let Some((stored, completed_at)) = done {
                    let erased =
                        serde_json::from_value(stored).map_err(|_| SegmentationError::Corrupt)?;
                    return Ok(Receipt {
                        erased,
                        completed_at,
                        replayed: true,
                    });
                }
                let segments = members::list_by_subject(conn, subject)?.len();
                let objections = store::delete_objection(conn, subject)?;
                memberships.forget(conn, subject, Reason::Erased)?;
                let deleted = store::delete_subject(conn, subject)?;
                let scores = rfm_store::delete_by_subject(conn, subject)?;
                let erased: Vec<(String, u64)> = [
                    ("segmentation.aggregates", deleted.customers),
                    ("segmentation.attributes", deleted.attributes),
                    ("segmentation.orders", deleted.orders),
                    ("segmentation.visits", deleted.visits),
                    ("segmentation.rfm", scores),
                    ("segmentation.order_lines", deleted.facts.order_lines),
                    ("segmentation.product_views", deleted.facts.product_views),
                    ("segmentation.survey_answers", deleted.facts.survey_answers),
                    ("segmentation.memberships", segments),
                    ("segmentation.objections", objections),
                ]
                .into_iter()
                .map(|(category, count)| (category.to_owned(), count as u64))
                .collect();
                let completed_at: DateTime<Utc> = diesel::insert_into(erasures::table)
                    .values((
                        erasures::request_id.eq(request),
                        erasures::subject_id.eq(subject),
                        erasures::receipt.eq(json!(erased)),
                    ))
                    .returning(erasures::completed_at)
                    .get_result(conn)?;
                Ok(Receipt {
                    erased,
                    completed_at,
                    replayed: false,
                })
            })
            .await
    }

    /// Turns the restriction on or off; a customer the projection does not know yet is
    /// recorded restricted, so its first orders never enter a segment.
    pub async fn restrict(
        &self,
        subject: Uuid,
        restricted: bool,
    ) -> Result<DateTime<Utc>, SegmentationError> {
        let memberships = self.memberships.clone();
        let now = self
            .db
            .run(move |conn| {
                let now = Utc::now();
                store::insert_customer(conn, subject, now)?;
                store::update_restricted(conn, subject, restricted)?;
                // In no score while restricted.
                if restricted {
                    rfm_store::delete_by_subject(conn, subject)?;
                }
                // Out of every segment while restricted; back in where the rules say after.
                memberships.evaluate_touched(
                    conn,
                    &HashMap::from([(subject, Touched::All)]),
                    now,
                )?;
                Ok::<_, SegmentationError>(now)
            })
            .await?;
        self.memberships.changed.notify_waiters();
        Ok(now)
    }
}

/// The segments the subject is in, each with the outcome of every condition of its rule now.
fn membership_records(
    conn: &mut PgConnection,
    memberships: &Maintainer,
    subject: Uuid,
) -> Result<Vec<ExportRecord>, SegmentationError> {
    let joined = members::list_by_subject(conn, subject)?;
    if joined.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let facts = segment_facts::load(conn, &[subject], now)?
        .remove(&subject)
        .map(|timeline| timeline.facts_at(now, memberships.minor_units()))
        .unwrap_or_default();
    let rules: HashMap<String, _> = memberships
        .segments(conn)?
        .into_iter()
        .map(|(segment, _)| (segment.name, segment.rule))
        .collect();
    Ok(joined
        .into_iter()
        .map(|(segment, joined_at)| {
            let conditions: Vec<serde_json::Value> = rules
                .get(&segment)
                .map(|rule| rule.evaluate(&facts).conditions)
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    json!({
                        "condition": c.condition,
                        "field": c.field,
                        "value": c.value.map(|v| v.to_string()),
                        "result": c.result,
                    })
                })
                .collect();
            ExportRecord {
                category: "segmentation.memberships",
                record_id: segment.clone(),
                document: json!({
                    "segment": segment,
                    "joined_at": joined_at,
                    "conditions": conditions,
                }),
            }
        })
        .collect())
}
