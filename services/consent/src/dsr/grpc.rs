//! `ecrm.consent.v1.DataSubjectRequests`: decode, call the domain, encode.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Utc};
use ecrm_platform::paging::Page;
use ecrm_platform::time::{from_timestamp, to_timestamp};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_server::DataSubjectRequests as RequestsApi;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{self, Correction, NewRequest, RequestKind, Requests, check_reason};
use super::store::RequestFilter;
use super::verification::check_code;
use crate::caller::Caller;
use crate::error::ConsentError;
use crate::orchestration::documents::Documents;
use crate::profiles_directory::ProfilesDirectory;

#[derive(Debug, Clone)]
pub struct RequestsService {
    pub requests: Arc<Requests>,
    pub documents: Arc<Documents>,
    /// Where subjects named by identifier are found; unset, only subject ids are accepted.
    pub directory: Option<Arc<ProfilesDirectory>>,
}

fn request_id(value: &str) -> Result<Uuid, ConsentError> {
    Uuid::parse_str(value).map_err(|_| ConsentError::invalid("request_id", "not a request id"))
}

fn kind_from_proto(value: i32) -> Result<RequestKind, ConsentError> {
    match pb::RequestType::try_from(value) {
        Ok(pb::RequestType::Access) => Ok(RequestKind::Access),
        Ok(pb::RequestType::Portability) => Ok(RequestKind::Portability),
        Ok(pb::RequestType::Erasure) => Ok(RequestKind::Erasure),
        Ok(pb::RequestType::Rectification) => Ok(RequestKind::Rectification),
        Ok(pb::RequestType::Restriction) => Ok(RequestKind::Restriction),
        Ok(pb::RequestType::LiftRestriction) => Ok(RequestKind::LiftRestriction),
        Ok(pb::RequestType::Objection) => Ok(RequestKind::Objection),
        _ => Err(ConsentError::invalid(
            "type",
            "a REQUEST_TYPE other than UNSPECIFIED",
        )),
    }
}

fn kind_to_proto(kind: RequestKind) -> pb::RequestType {
    match kind {
        RequestKind::Access => pb::RequestType::Access,
        RequestKind::Portability => pb::RequestType::Portability,
        RequestKind::Erasure => pb::RequestType::Erasure,
        RequestKind::Rectification => pb::RequestType::Rectification,
        RequestKind::Restriction => pb::RequestType::Restriction,
        RequestKind::LiftRestriction => pb::RequestType::LiftRestriction,
        RequestKind::Objection => pb::RequestType::Objection,
    }
}

fn status_to_proto(stored: &str) -> pb::RequestStatus {
    match domain::Status::parse(stored) {
        Some(domain::Status::AwaitingVerification) => pb::RequestStatus::AwaitingVerification,
        Some(domain::Status::AwaitingApproval) => pb::RequestStatus::AwaitingApproval,
        Some(domain::Status::InProgress) => pb::RequestStatus::InProgress,
        Some(domain::Status::Completed) => pb::RequestStatus::Completed,
        Some(domain::Status::Rejected) => pb::RequestStatus::Rejected,
        None => pb::RequestStatus::Unspecified,
    }
}

fn status_from_proto(value: i32, field: &str) -> Result<&'static str, ConsentError> {
    let status = match pb::RequestStatus::try_from(value) {
        Ok(pb::RequestStatus::AwaitingVerification) => domain::Status::AwaitingVerification,
        Ok(pb::RequestStatus::AwaitingApproval) => domain::Status::AwaitingApproval,
        Ok(pb::RequestStatus::InProgress) => domain::Status::InProgress,
        Ok(pb::RequestStatus::Completed) => domain::Status::Completed,
        Ok(pb::RequestStatus::Rejected) => domain::Status::Rejected,
        _ => {
            return Err(ConsentError::invalid(
                field,
                "a REQUEST_STATUS other than UNSPECIFIED",
            ));
        }
    };
    Ok(status.as_str())
}

const CHANNELS: [(pb::RequestChannel, &str); 6] = [
    (pb::RequestChannel::Web, "web"),
    (pb::RequestChannel::Email, "email"),
    (pb::RequestChannel::Phone, "phone"),
    (pb::RequestChannel::Post, "post"),
    (pb::RequestChannel::InPerson, "in_person"),
    (pb::RequestChannel::Partner, "partner"),
];

fn channel_from_proto(value: i32) -> Result<&'static str, ConsentError> {
    let channel = pb::RequestChannel::try_from(value).ok();
    CHANNELS
        .iter()
        .find(|(c, _)| Some(*c) == channel)
        .map(|(_, name)| *name)
        .ok_or_else(|| ConsentError::invalid("channel", "a REQUEST_CHANNEL other than UNSPECIFIED"))
}

fn channel_to_proto(stored: &str) -> pb::RequestChannel {
    CHANNELS
        .iter()
        .find(|(_, name)| *name == stored)
        .map_or(pb::RequestChannel::Unspecified, |(c, _)| *c)
}

fn date_to_proto(date: NaiveDate) -> pb::Date {
    pb::Date {
        year: date.year(),
        month: i32::try_from(date.month()).unwrap_or_default(),
        day: i32::try_from(date.day()).unwrap_or_default(),
    }
}

fn date_from_proto(date: &pb::Date, field: &str) -> Result<NaiveDate, ConsentError> {
    u32::try_from(date.month)
        .ok()
        .zip(u32::try_from(date.day).ok())
        .and_then(|(m, d)| NaiveDate::from_ymd_opt(date.year, m, d))
        .ok_or_else(|| ConsentError::invalid(field, "not a calendar date"))
}

fn request_to_proto(request: domain::Request) -> pb::DataSubjectRequest {
    let due_on = request.due_on(Utc::now().date_naive());
    let tasks = request
        .tasks
        .into_iter()
        .map(|task| pb::RequestTask {
            done: task.state == "done",
            failed: task.state == "failed",
            attempts: u32::try_from(task.attempts).unwrap_or_default(),
            last_error: task.last_error.unwrap_or_default(),
            notified_recipients: task.notified_recipients.into_iter().flatten().collect(),
            corrected_fields: task.corrected_fields.into_iter().flatten().collect(),
            service: task.service,
            action: task.action,
        })
        .collect();
    let row = request.row;
    pb::DataSubjectRequest {
        request_id: row.id.to_string(),
        subject_id: row.subject_id.to_string(),
        r#type: RequestKind::parse(&row.kind)
            .map_or(pb::RequestType::Unspecified, kind_to_proto)
            .into(),
        status: status_to_proto(&row.status).into(),
        channel: channel_to_proto(&row.channel).into(),
        received_at: Some(to_timestamp(row.received_at)),
        due_on: Some(date_to_proto(due_on)),
        paused_days: u32::try_from(row.paused_days).unwrap_or_default(),
        extension_months: u32::try_from(row.extension_months).unwrap_or_default(),
        extension_reason: row.extension_reason.unwrap_or_default(),
        rejection_reason: row.rejection_reason.unwrap_or_default(),
        history: request
            .history
            .into_iter()
            .map(|event| pb::RequestEvent {
                from_status: event
                    .from_status
                    .as_deref()
                    .map_or(pb::RequestStatus::Unspecified, status_to_proto)
                    .into(),
                to_status: status_to_proto(&event.to_status).into(),
                principal: event.principal,
                principal_kind: event.principal_kind,
                at: Some(to_timestamp(event.at)),
                note: event.note,
            })
            .collect(),
        tasks,
        corrected_fields: row.corrected_fields.into_iter().flatten().collect(),
        verification_sent_at: row.verification_sent_at.map(to_timestamp),
        verification_error: row.verification_error.unwrap_or_default(),
        verification_message_id: row.verification_message_id.unwrap_or_default(),
        verification_code_expires_at: row.verification_code_expires_at.map(to_timestamp),
        verification_codes_sent: u32::try_from(row.verification_codes_sent).unwrap_or_default(),
        verification_failed_attempts: u32::try_from(row.verification_failed_attempts)
            .unwrap_or_default(),
    }
}

impl RequestsService {
    /// The subject a request names: its id, or the profile its identifier belongs to.
    async fn subject(&self, subject: Option<&common::SubjectRef>) -> Result<Uuid, ConsentError> {
        match subject.and_then(|s| s.subject.as_ref()) {
            None => Err(ConsentError::invalid("subject", "is required")),
            Some(common::subject_ref::Subject::SubjectId(id)) => Uuid::parse_str(id)
                .map_err(|_| ConsentError::invalid("subject.subject_id", "not a subject id")),
            Some(common::subject_ref::Subject::Identifier(identifier)) => {
                let Some(directory) = &self.directory else {
                    return Err(ConsentError::FailedPrecondition(
                        "no profiles service is configured to find subjects by identifier; name the subject by id".to_owned(),
                    ));
                };
                directory.resolve(identifier.clone()).await?.ok_or_else(|| {
                    ConsentError::invalid("subject.identifier", "no customer has this identifier")
                })
            }
        }
    }
}

/// Bytes of the export zip per message.
const CHUNK: usize = 64 * 1024;

type ExportStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::GetExportResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RequestsApi for RequestsService {
    type GetExportStream = ExportStream;

    async fn get_export(
        &self,
        request: Request<pb::GetExportRequest>,
    ) -> Result<Response<Self::GetExportStream>, Status> {
        Caller::of(&request)?;
        let id = request_id(&request.get_ref().request_id)?;
        let bundle = self.documents.export_bundle(id).await?;
        let chunks: Vec<Result<pb::GetExportResponse, Status>> = bundle
            .chunks(CHUNK)
            .map(|chunk| {
                Ok(pb::GetExportResponse {
                    chunk: chunk.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn get_erasure_certificate(
        &self,
        request: Request<pb::GetErasureCertificateRequest>,
    ) -> Result<Response<pb::GetErasureCertificateResponse>, Status> {
        Caller::of(&request)?;
        let id = request_id(&request.get_ref().request_id)?;
        let signed = self.documents.erasure_certificate(id).await?;
        Ok(Response::new(pb::GetErasureCertificateResponse {
            certificate_json: signed.document,
            signature: signed.signature,
            public_key: signed.public_key,
        }))
    }

    async fn submit_request(
        &self,
        request: Request<pb::SubmitRequestRequest>,
    ) -> Result<Response<pb::SubmitRequestResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let kind = kind_from_proto(body.r#type)?;
        let channel = channel_from_proto(body.channel)?;
        let received_at = match &body.received_at {
            None => Utc::now(),
            Some(at) => from_timestamp(at)
                .ok_or_else(|| ConsentError::invalid("received_at", "not a valid timestamp"))?,
        };
        let subject_id = self.subject(body.subject.as_ref()).await?;
        let submitted = self
            .requests
            .submit(
                caller,
                NewRequest {
                    subject_id,
                    kind,
                    channel,
                    received_at,
                    corrections: body
                        .corrections
                        .iter()
                        .map(|c| Correction {
                            field: c.field.clone(),
                            value_json: c.value_json.clone(),
                        })
                        .collect(),
                },
            )
            .await?;
        Ok(Response::new(pb::SubmitRequestResponse {
            request: Some(request_to_proto(submitted)),
        }))
    }

    async fn verify_requester(
        &self,
        request: Request<pb::VerifyRequesterRequest>,
    ) -> Result<Response<pb::VerifyRequesterResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let id = request_id(&body.request_id)?;
        let reason = check_reason("reason", &body.reason)?;
        let verified = self.requests.verify(caller, id, reason).await?;
        Ok(Response::new(pb::VerifyRequesterResponse {
            request: Some(request_to_proto(verified)),
        }))
    }

    async fn confirm_requester(
        &self,
        request: Request<pb::ConfirmRequesterRequest>,
    ) -> Result<Response<pb::ConfirmRequesterResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let id = request_id(&body.request_id)?;
        let code = body.code.trim();
        check_code(code)?;
        let verified = self.requests.confirm(caller, id, code.to_owned()).await?;
        Ok(Response::new(pb::ConfirmRequesterResponse {
            request: Some(request_to_proto(verified)),
        }))
    }

    async fn resend_verification_code(
        &self,
        request: Request<pb::ResendVerificationCodeRequest>,
    ) -> Result<Response<pb::ResendVerificationCodeResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = request_id(&request.get_ref().request_id)?;
        let sent = self.requests.resend_code(caller, id).await?;
        Ok(Response::new(pb::ResendVerificationCodeResponse {
            request: Some(request_to_proto(sent)),
        }))
    }

    async fn approve_request(
        &self,
        request: Request<pb::ApproveRequestRequest>,
    ) -> Result<Response<pb::ApproveRequestResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = request_id(&request.get_ref().request_id)?;
        let approved = self.requests.approve(caller, id).await?;
        Ok(Response::new(pb::ApproveRequestResponse {
            request: Some(request_to_proto(approved)),
        }))
    }

    async fn reject_request(
        &self,
        request: Request<pb::RejectRequestRequest>,
    ) -> Result<Response<pb::RejectRequestResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let id = request_id(&body.request_id)?;
        let reason = check_reason("reason", &body.reason)?;
        let rejected = self.requests.reject(caller, id, reason).await?;
        Ok(Response::new(pb::RejectRequestResponse {
            request: Some(request_to_proto(rejected)),
        }))
    }

    async fn extend_deadline(
        &self,
        request: Request<pb::ExtendDeadlineRequest>,
    ) -> Result<Response<pb::ExtendDeadlineResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let id = request_id(&body.request_id)?;
        let reason = check_reason("reason", &body.reason)?;
        let extended = self
            .requests
            .extend(caller, id, body.months, reason)
            .await?;
        Ok(Response::new(pb::ExtendDeadlineResponse {
            request: Some(request_to_proto(extended)),
        }))
    }

    async fn complete_request(
        &self,
        request: Request<pb::CompleteRequestRequest>,
    ) -> Result<Response<pb::CompleteRequestResponse>, Status> {
        let caller = Caller::of(&request)?;
        let body = request.get_ref();
        let id = request_id(&body.request_id)?;
        let note = check_reason("note", &body.note)?;
        let completed = self.requests.complete_by_operator(caller, id, note).await?;
        Ok(Response::new(pb::CompleteRequestResponse {
            request: Some(request_to_proto(completed)),
        }))
    }

    async fn get_request(
        &self,
        request: Request<pb::GetRequestRequest>,
    ) -> Result<Response<pb::GetRequestResponse>, Status> {
        Caller::of(&request)?;
        let id = request_id(&request.get_ref().request_id)?;
        let found = self.requests.get(id).await?;
        Ok(Response::new(pb::GetRequestResponse {
            request: Some(request_to_proto(found)),
        }))
    }

    async fn list_requests(
        &self,
        request: Request<pb::ListRequestsRequest>,
    ) -> Result<Response<pb::ListRequestsResponse>, Status> {
        Caller::of(&request)?;
        let body = request.get_ref();
        let filter = RequestFilter {
            statuses: body
                .statuses
                .iter()
                .enumerate()
                .map(|(i, s)| status_from_proto(*s, &format!("statuses[{i}]")))
                .collect::<Result<_, _>>()?,
            kinds: body
                .types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    kind_from_proto(*t).map(RequestKind::as_str).map_err(|_| {
                        ConsentError::invalid(
                            format!("types[{i}]"),
                            "a REQUEST_TYPE other than UNSPECIFIED",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            due_on_or_before: body
                .due_on_or_before
                .as_ref()
                .map(|d| date_from_proto(d, "due_on_or_before"))
                .transpose()?,
        };
        let page = Page::from_request(body.page.as_ref()).map_err(ConsentError::from)?;
        let (requests, page) = self.requests.list(filter, page).await?;
        Ok(Response::new(pb::ListRequestsResponse {
            requests: requests.into_iter().map(request_to_proto).collect(),
            page: Some(page),
        }))
    }
}
