//! `ecrm.outbound.v1.Suppressions`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_platform::paging::Page;
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::suppressions_server::Suppressions as SuppressionsApi;
use tonic::{Request, Response, Status};

use super::domain::{Reason, Scope, Suppressions};
use super::store::SuppressionRow;
use crate::error::OutboundError;
use crate::templates::domain::Channel;
use crate::templates::grpc::{channel_from_proto, channel_to_proto};

fn scope_from_proto(value: i32) -> Result<Scope, OutboundError> {
    match pb::SuppressionScope::try_from(value) {
        Ok(pb::SuppressionScope::All) => Ok(Scope::All),
        Ok(pb::SuppressionScope::Marketing) => Ok(Scope::Marketing),
        _ => Err(OutboundError::invalid(
            "scope",
            "SUPPRESSION_SCOPE_ALL or SUPPRESSION_SCOPE_MARKETING",
        )),
    }
}

fn reason_from_proto(value: i32) -> Result<Reason, OutboundError> {
    match pb::SuppressionReason::try_from(value) {
        Ok(pb::SuppressionReason::Bounced) => Ok(Reason::Bounced),
        Ok(pb::SuppressionReason::Complained) => Ok(Reason::Complained),
        Ok(pb::SuppressionReason::Unsubscribed) => Ok(Reason::Unsubscribed),
        Ok(pb::SuppressionReason::Objected) => Ok(Reason::Objected),
        Ok(pb::SuppressionReason::Manual) => Ok(Reason::Manual),
        _ => Err(OutboundError::invalid(
            "reason",
            "one of the SUPPRESSION_REASON_ values",
        )),
    }
}

fn suppression_to_proto(row: SuppressionRow) -> pb::Suppression {
    let scope = match row.scope.as_str() {
        "all" => pb::SuppressionScope::All,
        "marketing" => pb::SuppressionScope::Marketing,
        _ => pb::SuppressionScope::Unspecified,
    };
    let reason = match row.reason.as_str() {
        "bounced" => pb::SuppressionReason::Bounced,
        "complained" => pb::SuppressionReason::Complained,
        "unsubscribed" => pb::SuppressionReason::Unsubscribed,
        "objected" => pb::SuppressionReason::Objected,
        "manual" => pb::SuppressionReason::Manual,
        _ => pb::SuppressionReason::Unspecified,
    };
    pb::Suppression {
        suppression_id: row.id.to_string(),
        channel: channel_to_proto(&row.channel).into(),
        address_index: row.address_index,
        scope: scope.into(),
        reason: reason.into(),
        note: row.note,
        created_by: row.created_by,
        created_at: Some(to_timestamp(row.created_at)),
    }
}

#[derive(Debug, Clone)]
pub struct SuppressionsService {
    pub suppressions: Arc<Suppressions>,
}

#[tonic::async_trait]
impl SuppressionsApi for SuppressionsService {
    async fn add_suppression(
        &self,
        request: Request<pb::AddSuppressionRequest>,
    ) -> Result<Response<pb::AddSuppressionResponse>, Status> {
        let by = ecrm_auth::Principal::of(&request)?.subject.clone();
        let body = request.into_inner();
        let channel = channel_from_proto("channel", body.channel)?;
        let scope = scope_from_proto(body.scope)?;
        let reason = reason_from_proto(body.reason)?;
        let (row, created) = self
            .suppressions
            .add(by, channel, &body.address, scope, reason, body.note)
            .await?;
        Ok(Response::new(pb::AddSuppressionResponse {
            suppression: Some(suppression_to_proto(row)),
            created,
        }))
    }

    async fn remove_suppression(
        &self,
        request: Request<pb::RemoveSuppressionRequest>,
    ) -> Result<Response<pb::RemoveSuppressionResponse>, Status> {
        let body = request.into_inner();
        let channel = channel_from_proto("channel", body.channel)?;
        let scope = scope_from_proto(body.scope)?;
        self.suppressions
            .remove(channel, &body.address, scope)
            .await?;
        Ok(Response::new(pb::RemoveSuppressionResponse {}))
    }

    async fn list_suppressions(
        &self,
        request: Request<pb::ListSuppressionsRequest>,
    ) -> Result<Response<pb::ListSuppressionsResponse>, Status> {
        let body = request.into_inner();
        let channel: Option<Channel> = if body.channel == i32::from(pb::Channel::Unspecified) {
            None
        } else {
            Some(channel_from_proto("channel", body.channel)?)
        };
        let page = Page::from_request(body.page.as_ref())
            .map_err(|error| OutboundError::invalid(error.field, error.reason))?;
        let address = Some(body.address.as_str()).filter(|a| !a.is_empty());
        let (rows, page) = self.suppressions.list(channel, address, page).await?;
        Ok(Response::new(pb::ListSuppressionsResponse {
            suppressions: rows.into_iter().map(suppression_to_proto).collect(),
            page: Some(page),
        }))
    }
}
