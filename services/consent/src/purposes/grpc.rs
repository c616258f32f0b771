//! `ecrm.consent.v1.Purposes`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_platform::paging::Page;
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::purposes_server::Purposes as PurposesApi;
use tonic::{Request, Response, Status};

use super::domain::{Channel, LawfulBasis, Purpose, Purposes, StoredPurpose};
use crate::caller::Caller;
use crate::error::ConsentError;

pub fn channel_from_proto(value: i32, field: &str) -> Result<Channel, ConsentError> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Email) => Ok(Channel::Email),
        Ok(pb::Channel::Sms) => Ok(Channel::Sms),
        Ok(pb::Channel::Push) => Ok(Channel::Push),
        Ok(pb::Channel::Phone) => Ok(Channel::Phone),
        Ok(pb::Channel::Post) => Ok(Channel::Post),
        Ok(pb::Channel::Partner) => Ok(Channel::Partner),
        _ => Err(ConsentError::invalid(
            field,
            "a CHANNEL other than UNSPECIFIED",
        )),
    }
}

pub fn channel_to_proto(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Email => pb::Channel::Email,
        Channel::Sms => pb::Channel::Sms,
        Channel::Push => pb::Channel::Push,
        Channel::Phone => pb::Channel::Phone,
        Channel::Post => pb::Channel::Post,
        Channel::Partner => pb::Channel::Partner,
    }
}

fn basis_from_proto(value: i32) -> Result<LawfulBasis, ConsentError> {
    match common::LawfulBasis::try_from(value) {
        Ok(common::LawfulBasis::Consent) => Ok(LawfulBasis::Consent),
        Ok(common::LawfulBasis::Contract) => Ok(LawfulBasis::Contract),
        Ok(common::LawfulBasis::LegalObligation) => Ok(LawfulBasis::LegalObligation),
        Ok(common::LawfulBasis::VitalInterests) => Ok(LawfulBasis::VitalInterests),
        Ok(common::LawfulBasis::PublicTask) => Ok(LawfulBasis::PublicTask),
        Ok(common::LawfulBasis::LegitimateInterest) => Ok(LawfulBasis::LegitimateInterest),
        Ok(common::LawfulBasis::SoftOptIn) => Ok(LawfulBasis::SoftOptIn),
        _ => Err(ConsentError::invalid(
            "purpose.lawful_basis",
            "a LAWFUL_BASIS other than UNSPECIFIED",
        )),
    }
}

fn basis_to_proto(basis: LawfulBasis) -> common::LawfulBasis {
    match basis {
        LawfulBasis::Consent => common::LawfulBasis::Consent,
        LawfulBasis::Contract => common::LawfulBasis::Contract,
        LawfulBasis::LegalObligation => common::LawfulBasis::LegalObligation,
        LawfulBasis::VitalInterests => common::LawfulBasis::VitalInterests,
        LawfulBasis::PublicTask => common::LawfulBasis::PublicTask,
        LawfulBasis::LegitimateInterest => common::LawfulBasis::LegitimateInterest,
        LawfulBasis::SoftOptIn => common::LawfulBasis::SoftOptIn,
    }
}

fn purpose_from_proto(purpose: Option<&pb::Purpose>) -> Result<Purpose, ConsentError> {
    let Some(purpose) = purpose else {
        return Err(ConsentError::invalid("purpose", "is required"));
    };
    let channels = purpose
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| channel_from_proto(*c, &format!("purpose.channels[{i}]")))
        .collect::<Result<_, _>>()?;
    Purpose::new(
        &purpose.key,
        &purpose.description,
        basis_from_proto(purpose.lawful_basis)?,
        channels,
        &purpose.data_categories,
        purpose.retention_days,
        purpose.direct_marketing,
    )
}

fn purpose_to_proto(stored: StoredPurpose) -> pb::Purpose {
    let purpose = stored.purpose;
    pb::Purpose {
        key: purpose.key,
        description: purpose.description,
        lawful_basis: basis_to_proto(purpose.lawful_basis).into(),
        channels: purpose
            .channels
            .into_iter()
            .map(|c| channel_to_proto(c).into())
            .collect(),
        data_categories: purpose.data_categories,
        retention_days: purpose.retention_days,
        direct_marketing: purpose.direct_marketing,
        created_at: Some(to_timestamp(stored.created_at)),
        notice_versions: stored.notice_versions,
    }
}

#[derive(Debug, Clone)]
pub struct PurposesService {
    pub purposes: Arc<Purposes>,
}

#[tonic::async_trait]
impl PurposesApi for PurposesService {
    async fn define_purpose(
        &self,
        request: Request<pb::DefinePurposeRequest>,
    ) -> Result<Response<pb::DefinePurposeResponse>, Status> {
        Caller::of(&request)?;
        let purpose = purpose_from_proto(request.get_ref().purpose.as_ref())?;
        let (stored, created) = self.purposes.define(purpose).await?;
        Ok(Response::new(pb::DefinePurposeResponse {
            purpose: Some(purpose_to_proto(stored)),
            created,
        }))
    }

    async fn get_purpose(
        &self,
        request: Request<pb::GetPurposeRequest>,
    ) -> Result<Response<pb::GetPurposeResponse>, Status> {
        Caller::of(&request)?;
        let stored = self.purposes.get(request.into_inner().key).await?;
        Ok(Response::new(pb::GetPurposeResponse {
            purpose: Some(purpose_to_proto(stored)),
        }))
    }

    async fn list_purposes(
        &self,
        request: Request<pb::ListPurposesRequest>,
    ) -> Result<Response<pb::ListPurposesResponse>, Status> {
        Caller::of(&request)?;
        let page =
            Page::from_request(request.get_ref().page.as_ref()).map_err(ConsentError::from)?;
        let (purposes, page) = self.purposes.list(page).await?;
        Ok(Response::new(pb::ListPurposesResponse {
            purposes: purposes.into_iter().map(purpose_to_proto).collect(),
            page: Some(page),
        }))
    }

    async fn publish_notice(
        &self,
        request: Request<pb::PublishNoticeRequest>,
    ) -> Result<Response<pb::PublishNoticeResponse>, Status> {
        Caller::of(&request)?;
        let body = request.into_inner();
        let (version, created, published_at) = self
            .purposes
            .publish_notice(body.purpose_key, body.text)
            .await?;
        Ok(Response::new(pb::PublishNoticeResponse {
            version,
            created,
            published_at: Some(to_timestamp(published_at)),
        }))
    }
}
