//! `ecrm.privacy.v1.PersonalData`, served by consent (the method table admits the data subject
//! request orchestrator only).

use std::sync::Arc;

use ecrm_platform::privacy::{ExportStream, export_stream, nothing_to_rectify};
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::common::v1::LawfulBasis;
use ecrm_proto::ecrm::privacy::v1 as pb;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalData;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{LEDGER, Privacy, REQUESTS, RESTRICTION};
use crate::caller::Caller;
use crate::error::ConsentError;

const SERVICE: &str = "consent";

fn uuid(field: &str, value: &str) -> Result<Uuid, ConsentError> {
    Uuid::parse_str(value).map_err(|_| ConsentError::invalid(field, "not a UUID"))
}

fn category(key: &str, description: &str, basis: LawfulBasis, retention: &str) -> pb::DataCategory {
    pb::DataCategory {
        key: key.to_owned(),
        description: description.to_owned(),
        purposes: vec!["demonstrating_compliance".to_owned()],
        lawful_basis: basis.into(),
        retention: None,
        retention_description: retention.to_owned(),
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
        request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Caller::of(&request)?;
        Ok(Response::new(pb::DescribeResponse {
            service: SERVICE.to_owned(),
            categories: vec![
                category(
                    LEDGER,
                    "every consent decision: purpose, channel, notice version, collection point, hashed IP address, user agent, form",
                    LawfulBasis::LegalObligation,
                    "as long as the consent must be demonstrated (Art. 7(1)), beyond an erasure",
                ),
                category(
                    REQUESTS,
                    "data subject requests and how they were answered",
                    LawfulBasis::LegalObligation,
                    "as long as compliance must be demonstrated (Art. 5(2)), beyond an erasure",
                ),
                category(
                    RESTRICTION,
                    "whether processing is restricted (Art. 18)",
                    LawfulBasis::LegalObligation,
                    "while the subject's data is held",
                ),
            ],
        }))
    }

    type ExportStream = ExportStream;

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        Caller::of(&request)?;
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
        Caller::of(&request)?;
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
                    .map(|(category, count)| pb::ErasedCount {
                        category: category.to_owned(),
                        count,
                    })
                    .collect(),
                retained: receipt
                    .retained
                    .into_iter()
                    .map(|kept| pb::RetainedItem {
                        category: kept.category.to_owned(),
                        count: kept.count,
                        legal_reason: kept.legal_reason.to_owned(),
                        retain_until: None,
                        pseudonymised: true,
                    })
                    .collect(),
                completed_at: Some(to_timestamp(receipt.completed_at)),
                replayed: receipt.replayed,
                // Consent discloses nothing to partners.
                notified_recipients: Vec::new(),
            }),
        }))
    }

    async fn restrict(
        &self,
        request: Request<pb::RestrictRequest>,
    ) -> Result<Response<pb::RestrictResponse>, Status> {
        Caller::of(&request)?;
        let body = request.get_ref();
        let subject = uuid("subject_id", &body.subject_id)?;
        let request_id = uuid("request_id", &body.request_id)?;
        let effective_at = self
            .privacy
            .restrict(subject, request_id, body.restricted)
            .await?;
        Ok(Response::new(pb::RestrictResponse {
            restricted: body.restricted,
            effective_at: Some(to_timestamp(effective_at)),
            notified_recipients: Vec::new(),
        }))
    }

    /// Consent holds nothing a subject could correct: its records are what happened (the
    /// ledger, the requests), and correcting them would falsify them.
    async fn rectify(
        &self,
        request: Request<pb::RectifyRequest>,
    ) -> Result<Response<pb::RectifyResponse>, Status> {
        Caller::of(&request)?;
        let body = request.get_ref();
        uuid("subject_id", &body.subject_id)?;
        uuid("request_id", &body.request_id)?;
        Ok(Response::new(nothing_to_rectify(SERVICE, body)))
    }
}
