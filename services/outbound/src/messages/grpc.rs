//! `ecrm.outbound.v1.Messages`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_platform::paging::Page;
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::messages_server::Messages as MessagesApi;
use tonic::{Request, Response, Status as GrpcStatus};

use super::domain::{Messages, NewTransactional, Reason, Status};
use super::store::MessageRow;
use crate::error::OutboundError;
use crate::templates::grpc::{channel_from_proto, channel_to_proto};

pub fn status_to_proto(value: &str) -> pb::MessageStatus {
    match Status::parse(value) {
        Some(Status::Queued) => pb::MessageStatus::Queued,
        Some(Status::Deferred) => pb::MessageStatus::Deferred,
        Some(Status::Sending) => pb::MessageStatus::Sending,
        Some(Status::Sent) => pb::MessageStatus::Sent,
        Some(Status::Blocked) => pb::MessageStatus::Blocked,
        Some(Status::Failed) => pb::MessageStatus::Failed,
        Some(Status::Cancelled) => pb::MessageStatus::Cancelled,
        None => pb::MessageStatus::Unspecified,
    }
}

pub fn reason_to_proto(value: Option<&str>) -> pb::MessageReason {
    match value.and_then(Reason::parse) {
        Some(Reason::Withdrawn) => pb::MessageReason::Withdrawn,
        Some(Reason::Expired) => pb::MessageReason::Expired,
        Some(Reason::NeverAsked) => pb::MessageReason::NeverAsked,
        Some(Reason::Objected) => pb::MessageReason::Objected,
        Some(Reason::Restricted) => pb::MessageReason::Restricted,
        Some(Reason::Suppressed) => pb::MessageReason::Suppressed,
        Some(Reason::FrequencyCap) => pb::MessageReason::FrequencyCap,
        Some(Reason::NoAddress) => pb::MessageReason::NoAddress,
        Some(Reason::UnknownSubject) => pb::MessageReason::UnknownSubject,
        Some(Reason::Unsubscribed) => pb::MessageReason::Unsubscribed,
        Some(Reason::QuietHours) => pb::MessageReason::QuietHours,
        Some(Reason::RateLimited) => pb::MessageReason::RateLimited,
        Some(Reason::GateUnavailable) => pb::MessageReason::GateUnavailable,
        Some(Reason::TransientFailure) => pb::MessageReason::TransientFailure,
        Some(Reason::PermanentFailure) => pb::MessageReason::PermanentFailure,
        Some(Reason::AttemptsExhausted) => pb::MessageReason::AttemptsExhausted,
        Some(Reason::TemplateFailed) => pb::MessageReason::TemplateFailed,
        Some(Reason::ChannelNotConfigured) => pb::MessageReason::ChannelNotConfigured,
        None => pb::MessageReason::Unspecified,
    }
}

pub fn message_to_proto(row: MessageRow) -> pb::Message {
    let waiting = matches!(
        Status::parse(&row.status),
        Some(Status::Queued | Status::Deferred)
    );
    pb::Message {
        message_id: row.message_id.to_string(),
        subject_id: row.subject_id.to_string(),
        channel: channel_to_proto(&row.channel).into(),
        purpose_key: row.purpose_key,
        marketing: row.marketing,
        template_key: row.template_key,
        locale: row.locale.unwrap_or_default(),
        campaign_id: row.campaign_id.map(|id| id.to_string()).unwrap_or_default(),
        idempotency_key: row.idempotency_key.unwrap_or_default(),
        status: status_to_proto(&row.status).into(),
        reason: reason_to_proto(row.reason.as_deref()).into(),
        detail: row.detail,
        attempts: u32::try_from(row.attempts).unwrap_or_default(),
        created_at: Some(to_timestamp(row.created_at)),
        next_attempt_at: waiting.then(|| to_timestamp(row.due_at)),
        sent_at: row.sent_at.map(to_timestamp),
        rendered_locale: row.rendered_locale.unwrap_or_default(),
        template_version: row
            .template_version
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or_default(),
        provider_id: row.provider_id.unwrap_or_default(),
    }
}

#[derive(Debug, Clone)]
pub struct MessagesService {
    pub messages: Arc<Messages>,
}

#[tonic::async_trait]
impl MessagesApi for MessagesService {
    async fn send_transactional(
        &self,
        request: Request<pb::SendTransactionalRequest>,
    ) -> Result<Response<pb::SendTransactionalResponse>, GrpcStatus> {
        let by = ecrm_auth::Principal::of(&request)?.subject.clone();
        let body = request.into_inner();
        let channel = channel_from_proto("channel", body.channel)?;
        let (row, created) = self
            .messages
            .send_transactional(
                by,
                NewTransactional {
                    subject_id: body.subject_id,
                    channel,
                    template_key: body.template_key,
                    locale: body.locale,
                    variables_json: body.variables_json,
                    purpose_key: body.purpose_key,
                    idempotency_key: body.idempotency_key,
                },
            )
            .await?;
        Ok(Response::new(pb::SendTransactionalResponse {
            message: Some(message_to_proto(row)),
            created,
        }))
    }

    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, GrpcStatus> {
        let row = self.messages.get(&request.get_ref().message_id).await?;
        Ok(Response::new(pb::GetMessageResponse {
            message: Some(message_to_proto(row)),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, GrpcStatus> {
        let body = request.into_inner();
        let page = Page::from_request(body.page.as_ref())
            .map_err(|error| OutboundError::invalid(error.field, error.reason))?;
        let (rows, page) = self.messages.list(&body.subject_id, page).await?;
        Ok(Response::new(pb::ListMessagesResponse {
            messages: rows.into_iter().map(message_to_proto).collect(),
            page: Some(page),
        }))
    }
}
