//! `ecrm.privacy.v1.PersonalData`, served by segmentation.

use std::sync::Arc;

use ecrm_platform::privacy::{ExportStream, export_stream, nothing_to_rectify};
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::common::v1::LawfulBasis;
use ecrm_proto::ecrm::privacy::v1 as pb;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalData;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::Privacy;
use crate::error::SegmentationError;

const SERVICE: &str = "segmentation";

fn uuid(field: &str, value: &str) -> Result<Uuid, SegmentationError> {
    Uuid::parse_str(value).map_err(|_| SegmentationError::invalid(field, "not a UUID"))
}

fn category(key: &str, description: &str) -> pb::DataCategory {
    pb::DataCategory {
        key: key.to_owned(),
        description: description.to_owned(),
        purposes: vec!["profiling".to_owned(), "analytics".to_owned()],
        lawful_basis: LawfulBasis::LegitimateInterest.into(),
        retention: None,
        retention_description: "as long as profiles keeps the customer and the interaction"
            .to_owned(),
        recipients: Vec::new(),
    }
}

#[derive(Debug, Clone)]
pub struct PersonalDataService {
    pub privacy: Arc<Privacy>,
}

#[tonic::async_trait]
impl PersonalData for PersonalDataService {
    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Ok(Response::new(pb::DescribeResponse {
            service: SERVICE.to_owned(),
            categories: vec![
                category(
                    "segmentation.aggregates",
                    "per customer: first and last purchase, order and return counts, spend in the reporting currency, visit days, last interaction",
                ),
                category(
                    "segmentation.attributes",
                    "profile attributes segment rules read, from profiles: country, locale and custom attributes; no names, birth date, address or identifiers",
                ),
                category(
                    "segmentation.orders",
                    "orders and returns: order id, date, amount",
                ),
                category(
                    "segmentation.order_lines",
                    "the products of orders and returns: product id, category, quantity, date",
                ),
                category(
                    "segmentation.visits",
                    "page and product views counted per day",
                ),
                category(
                    "segmentation.rfm",
                    "recency, frequency and monetary measures, their scores and the named segment, of the latest computation",
                ),
                category(
                    "segmentation.objections",
                    "the objection to profiling, as the consent ledger says it, and when",
                ),
                category(
                    "segmentation.memberships",
                    "the rule segments the customer is in, since when, and why (each condition with the customer's value); past joins and leaves",
                ),
                category(
                    "segmentation.tiers",
                    "per loyalty tier program: the tier, its measure, since when, until when it is kept and its next change; derived from the orders when asked, not stored",
                ),
                category(
                    "segmentation.product_views",
                    "product views counted per product and day",
                ),
                category(
                    "segmentation.survey_answers",
                    "survey scores: satisfaction (1-5) and NPS (0-10), with their date; no comments",
                ),
            ],
        }))
    }

    type ExportStream = ExportStream;

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let body = request.get_ref();
        let subject = uuid("subject_id", &body.subject_id)?;
        uuid("request_id", &body.request_id)?;
        let records = self.privacy.export(subject).await?;
        Ok(Response::new(export_stream(records)))
    }

    async fn erase(
        &self,
        request: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        let body = request.get_ref();
        let subject = uuid("subject_id", &body.subject_id)?;
        let request_id = uuid("request_id", &body.request_id)?;
        let receipt = self.privacy.erase(subject, request_id).await?;
        Ok(Response::new(pb::EraseResponse {
            receipt: Some(pb::ErasureReceipt {
                service: SERVICE.to_owned(),
                subject_id: subject.to_string(),
                request_id: request_id.to_string(),
                erased: receipt
                    .erased
                    .into_iter()
                    .map(|(category, count)| pb::ErasedCount { category, count })
                    .collect(),
                // Nothing is kept: profiles keeps the accounting records.
                retained: Vec::new(),
                completed_at: Some(to_timestamp(receipt.completed_at)),
                replayed: receipt.replayed,
                notified_recipients: Vec::new(),
            }),
        }))
    }

    async fn restrict(
        &self,
        request: Request<pb::RestrictRequest>,
    ) -> Result<Response<pb::RestrictResponse>, Status> {
        let body = request.get_ref();
        let subject = uuid("subject_id", &body.subject_id)?;
        uuid("request_id", &body.request_id)?;
        let at = self.privacy.restrict(subject, body.restricted).await?;
        Ok(Response::new(pb::RestrictResponse {
            restricted: body.restricted,
            effective_at: Some(to_timestamp(at)),
            notified_recipients: Vec::new(),
        }))
    }

    /// Segmentation holds only what it derives from profiles: a correction there flows here.
    async fn rectify(
        &self,
        request: Request<pb::RectifyRequest>,
    ) -> Result<Response<pb::RectifyResponse>, Status> {
        let body = request.get_ref();
        uuid("subject_id", &body.subject_id)?;
        uuid("request_id", &body.request_id)?;
        Ok(Response::new(nothing_to_rectify(SERVICE, body)))
    }
}
