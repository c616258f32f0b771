//! Export, erasure and restriction of one subject's data: the projection and the scores.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ecrm_platform::Db;
use ecrm_platform::privacy::ExportRecord;
use serde_json::json;
use uuid::Uuid;

use crate::error::SegmentationError;
use crate::projection::{facts, store};
use crate::rfm::store as rfm_store;
use crate::schema::segmentation::erasures;

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
}

impl Privacy {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Every record about the subject: its aggregates, orders and returns and their lines,
    /// visit days, product views, survey scores, RFM scores.
    pub async fn export(&self, subject: Uuid) -> Result<Vec<ExportRecord>, SegmentationError> {
        self.db
            .run(move |conn| {
                let mut records = Vec::new();
                if let Some(c) = store::find_customer(conn, subject)? {
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
                for o in store::list_orders(conn, subject)? {
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
                Ok(records)
            })
            .await
    }

    /// Deletes everything about the subject; repeating `request` replays the first receipt.
    pub async fn erase(&self, subject: Uuid, request: Uuid) -> Result<Receipt, SegmentationError> {
        self.db
            .run(move |conn| {
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
                let deleted = store::delete_subject(conn, subject)?;
                let scores = rfm_store::delete_by_subject(conn, subject)?;
                let erased: Vec<(String, u64)> = [
                    ("segmentation.aggregates", deleted.customers),
                    ("segmentation.orders", deleted.orders),
                    ("segmentation.visits", deleted.visits),
                    ("segmentation.rfm", scores),
                    ("segmentation.order_lines", deleted.facts.order_lines),
                    ("segmentation.product_views", deleted.facts.product_views),
                    ("segmentation.survey_answers", deleted.facts.survey_answers),
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
        self.db
            .run(move |conn| {
                let now = Utc::now();
                store::insert_customer(conn, subject, now)?;
                store::update_restricted(conn, subject, restricted)?;
                // In no score while restricted.
                if restricted {
                    rfm_store::delete_by_subject(conn, subject)?;
                }
                Ok(now)
            })
            .await
    }
}
