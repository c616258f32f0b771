//! `ecrm.privacy.v1.PersonalData`, served by profiles.

use std::sync::Arc;
use std::time::Duration;

use ecrm_platform::privacy::{ExportStream, export_stream};
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::common::v1::LawfulBasis;
use ecrm_proto::ecrm::privacy::v1 as pb;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalData;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{Privacy, Receipt};
use super::rectify::Correction;
use crate::caller::Caller;
use crate::error::ProfilesError;
use crate::interactions::domain::InteractionKind;
use crate::profiles::grpc::subject_id;

const SERVICE: &str = "profiles";
/// Corrections one request may carry, as the consent service allows.
const MAX_CORRECTIONS: usize = 50;

fn request_id(value: &str) -> Result<Uuid, ProfilesError> {
    Uuid::parse_str(value)
        .map_err(|_| ProfilesError::invalid("request_id", "not a request id (a UUID)"))
}

fn category(
    key: &str,
    description: &str,
    purposes: &[&str],
    basis: LawfulBasis,
    retention: Option<Duration>,
    retention_description: &str,
    recipients: &[&str],
) -> pb::DataCategory {
    pb::DataCategory {
        key: key.to_owned(),
        description: description.to_owned(),
        purposes: purposes.iter().map(|p| (*p).to_owned()).collect(),
        lawful_basis: basis.into(),
        retention: retention.and_then(|r| prost_types::Duration::try_from(r).ok()),
        retention_description: retention_description.to_owned(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// This service's part of the record of processing activities.
fn categories() -> Vec<pb::DataCategory> {
    let browsing = InteractionKind::PageView.retention();
    let orders = InteractionKind::Order.retention();
    let relationship = InteractionKind::SupportTicket.retention();
    vec![
        category(
            "profile.identifiers",
            "email addresses, phone numbers, loyalty numbers, partner and custom references",
            &["customer_service", "contract", "marketing"],
            LawfulBasis::Contract,
            None,
            "as long as the customer relationship lasts",
            &["partners the customer consented to share with"],
        ),
        category(
            "profile.attributes",
            "names, birth date, locale, country, time zone, postal address, custom attributes, with their history",
            &["customer_service", "contract", "marketing", "profiling"],
            LawfulBasis::Contract,
            None,
            "as long as the customer relationship lasts",
            &["partners the customer consented to share with"],
        ),
        category(
            "interactions",
            "page and product views, cart adds",
            &["analytics", "profiling"],
            LawfulBasis::LegitimateInterest,
            Some(browsing),
            "13 months after the interaction",
            &[],
        ),
        category(
            "interactions.orders",
            "orders and returns: order id, amounts, line items",
            &["contract", "accounting", "profiling"],
            LawfulBasis::LegalObligation,
            Some(orders),
            "10 years (amounts kept without the customer after an erasure)",
            &[],
        ),
        category(
            "interactions.relationship",
            "support tickets, campaign responses, survey answers",
            &["customer_service", "marketing"],
            LawfulBasis::LegitimateInterest,
            Some(relationship),
            "3 years after the interaction",
            &[],
        ),
        category(
            "profile.merges",
            "merges of duplicate profiles, with who merged them and why",
            &["data_quality"],
            LawfulBasis::LegitimateInterest,
            None,
            "as long as the profile",
            &[],
        ),
        category(
            "disclosures",
            "partners the customer's data was disclosed to (GDPR Art. 19)",
            &["accountability"],
            LawfulBasis::LegalObligation,
            None,
            "as long as the profile",
            &[],
        ),
        category(
            "recipient_notices",
            "notices to the partners that received the customer's data of its erasure, restriction or rectification (GDPR Art. 19)",
            &["accountability"],
            LawfulBasis::LegalObligation,
            None,
            "kept after an erasure, naming the customer by id only",
            &["the partners notified"],
        ),
        category(
            "access_log",
            "who read or changed the customer's data, for which purpose",
            &["accountability"],
            LawfulBasis::LegalObligation,
            None,
            "as long as the profile",
            &[],
        ),
    ]
}

fn receipt_to_proto(receipt: Receipt, request_id: Uuid) -> pb::ErasureReceipt {
    pb::ErasureReceipt {
        service: SERVICE.to_owned(),
        subject_id: receipt.subject_id.to_string(),
        request_id: request_id.to_string(),
        erased: receipt
            .erased
            .into_iter()
            .map(|(category, count)| pb::ErasedCount { category, count })
            .collect(),
        retained: receipt
            .retained
            .into_iter()
            .map(|r| pb::RetainedItem {
                category: r.category,
                count: r.count,
                legal_reason: r.legal_reason,
                retain_until: r.retain_until.map(to_timestamp),
                pseudonymised: r.pseudonymised,
            })
            .collect(),
        completed_at: Some(to_timestamp(receipt.completed_at)),
        replayed: receipt.replayed,
        notified_recipients: receipt.notified_recipients,
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
            categories: categories(),
        }))
    }

    type ExportStream = ExportStream;

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let principal = ecrm_auth::Principal::of(&request)?.clone();
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        request_id(&body.request_id)?;
        let caller = Caller::for_request(principal, "PersonalData/Export");
        let records = self.privacy.export(caller, subject).await?;
        Ok(Response::new(export_stream(records)))
    }

    async fn erase(
        &self,
        request: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        let request_id = request_id(&body.request_id)?;
        let receipt = self.privacy.erase(subject, request_id).await?;
        Ok(Response::new(pb::EraseResponse {
            receipt: Some(receipt_to_proto(receipt, request_id)),
        }))
    }

    async fn restrict(
        &self,
        request: Request<pb::RestrictRequest>,
    ) -> Result<Response<pb::RestrictResponse>, Status> {
        let principal = ecrm_auth::Principal::of(&request)?.clone();
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        request_id(&body.request_id)?;
        let request_id = request_id(&body.request_id)?;
        let caller = Caller::for_request(principal, "PersonalData/Restrict");
        let state = self
            .privacy
            .restrict(caller, subject, request_id, body.restricted)
            .await?;
        Ok(Response::new(pb::RestrictResponse {
            restricted: state.restricted,
            effective_at: Some(to_timestamp(state.since)),
            notified_recipients: state.notified,
        }))
    }

    async fn rectify(
        &self,
        request: Request<pb::RectifyRequest>,
    ) -> Result<Response<pb::RectifyResponse>, Status> {
        let principal = ecrm_auth::Principal::of(&request)?.clone();
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        let request_id = request_id(&body.request_id)?;
        let corrections = corrections(&body.corrections)?;
        let caller = Caller::for_request(principal, "PersonalData/Rectify");
        let rectified = self
            .privacy
            .rectify(caller, subject, request_id, corrections)
            .await?;
        Ok(Response::new(pb::RectifyResponse {
            service: SERVICE.to_owned(),
            applied: rectified.applied,
            not_held: rectified.not_held,
            notified_recipients: rectified.notified,
        }))
    }
}

/// The corrections of a request: at least one, each field once, each value JSON.
fn corrections(corrections: &[pb::Correction]) -> Result<Vec<Correction>, ProfilesError> {
    if corrections.is_empty() {
        return Err(ProfilesError::invalid("corrections", "at least one"));
    }
    if corrections.len() > MAX_CORRECTIONS {
        return Err(ProfilesError::invalid(
            "corrections",
            format!("at most {MAX_CORRECTIONS}"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    corrections
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if !seen.insert(c.field.as_str()) {
                return Err(ProfilesError::invalid(
                    format!("corrections[{i}].field"),
                    format!("{:?} is corrected twice", c.field),
                ));
            }
            let value = serde_json::from_str(&c.value_json).map_err(|_| {
                ProfilesError::invalid(format!("corrections[{i}].value_json"), "not JSON")
            })?;
            Ok(Correction {
                field: c.field.clone(),
                value,
            })
        })
        .collect()
}
