//! `ecrm.privacy.v1.PersonalData`, served by outbound.

use std::sync::Arc;

use ecrm_platform::privacy::{ExportStream, export_stream, nothing_to_rectify};
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::common::v1::LawfulBasis;
use ecrm_proto::ecrm::privacy::v1 as pb;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalData;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{
    CAMPAIGN_RECIPIENTS, MESSAGES, Privacy, RESTRICTIONS, SUPPRESSIONS, UNSUBSCRIBES,
};
use crate::error::OutboundError;

const SERVICE: &str = "outbound";
/// Messages, recipients and unsubscribes have no retention of their own yet.
const WHILE_HELD: &str = "as long as profiles keeps the customer; erased with the customer";

fn uuid(field: &str, value: &str) -> Result<Uuid, OutboundError> {
    Uuid::parse_str(value).map_err(|_| OutboundError::invalid(field, "not a UUID"))
}

fn category(
    key: &str,
    description: &str,
    lawful_basis: LawfulBasis,
    retention_description: &str,
) -> pb::DataCategory {
    pb::DataCategory {
        key: key.to_owned(),
        description: description.to_owned(),
        // Each message is sent for the purpose its caller names, with that purpose's basis.
        purposes: Vec::new(),
        lawful_basis: lawful_basis.into(),
        retention: None,
        retention_description: retention_description.to_owned(),
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
                    MESSAGES,
                    "each message sent or to be sent to the customer: channel, purpose, template, the variables the caller gave until the message is sent or refused (then dropped), status and reason, when queued and sent; the address is read from profiles at sending and not kept; lawful basis: the purpose's",
                    LawfulBasis::Unspecified,
                    WHILE_HELD,
                ),
                category(
                    CAMPAIGN_RECIPIENTS,
                    "the campaigns the customer was a recipient of; lawful basis: the campaign's purpose's",
                    LawfulBasis::Unspecified,
                    WHILE_HELD,
                ),
                category(
                    UNSUBSCRIBES,
                    "one-click unsubscribes: purpose, channel, when, the SHA-256 of the IP address, the user agent, and when consent recorded the withdrawal",
                    LawfulBasis::LegalObligation,
                    WHILE_HELD,
                ),
                category(
                    RESTRICTIONS,
                    "whether processing is restricted (Art. 18): nothing is sent while it is",
                    LawfulBasis::LegalObligation,
                    "while the restriction lasts",
                ),
                category(
                    SUPPRESSIONS,
                    "addresses never written to again (bounced, complained, unsubscribed, objected), kept only as blind indexes linked to no customer: never exported or erased with a customer, kept after an erasure (Art. 21(3), 17(3)(b) and (e))",
                    LawfulBasis::LegalObligation,
                    "until the suppression is lifted",
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
                // Outbound discloses nothing to partners.
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
        let request_id = uuid("request_id", &body.request_id)?;
        let state = self
            .privacy
            .restrict(subject, request_id, body.restricted)
            .await?;
        Ok(Response::new(pb::RestrictResponse {
            restricted: state.restricted,
            effective_at: Some(to_timestamp(state.effective_at)),
            notified_recipients: Vec::new(),
        }))
    }

    /// Outbound holds no field a subject could correct: addresses and names are at profiles,
    /// and a message's variables are what the caller asked to send, dropped once it is done.
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
