//! `ecrm.profiles.v1.PartnerSync`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::partner_sync_server::PartnerSync as PartnerSyncApi;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{PartnerSync, PartnerUpsert};
use crate::attributes::grpc as attributes;
use crate::caller::Caller;
use crate::changes::domain::decode_cursor;
use crate::error::ProfilesError;
use crate::identifiers::domain::IdentifierKind;
use crate::notices::{NoticeKind, NoticeRow};
use crate::profiles::grpc::{identifier_to_proto, new_identifier_from_proto};

/// Changes read by one pull when the request names no number.
const DEFAULT_PULL: u32 = 100;
const MAX_PULL: u32 = 500;

impl TryFrom<&pb::UpsertPartnerProfileRequest> for PartnerUpsert {
    type Error = ProfilesError;

    fn try_from(request: &pb::UpsertPartnerProfileRequest) -> Result<Self, Self::Error> {
        let identifiers = request
            .identifiers
            .iter()
            .enumerate()
            .map(|(i, new)| {
                let field = format!("identifiers[{i}]");
                let new = new_identifier_from_proto(new, &field)?;
                if new.verified_at.is_some() {
                    return Err(ProfilesError::invalid(
                        format!("{field}.verified"),
                        "partners cannot vouch for a verification",
                    ));
                }
                if new.identifier.kind == IdentifierKind::PartnerReference {
                    return Err(ProfilesError::invalid(
                        format!("{field}.identifier.kind"),
                        "the partner's reference is external_id; other partners' are not theirs to send",
                    ));
                }
                Ok(new)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            external_id: request.external_id.clone(),
            identifiers,
            changes: attributes::given(request.attributes.as_ref())?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PartnerSyncService {
    pub partners: Arc<PartnerSync>,
}

#[tonic::async_trait]
impl PartnerSyncApi for PartnerSyncService {
    async fn upsert_partner_profile(
        &self,
        request: Request<pb::UpsertPartnerProfileRequest>,
    ) -> Result<Response<pb::UpsertPartnerProfileResponse>, Status> {
        let caller = Caller::of(&request, "PartnerSync/UpsertPartnerProfile")?;
        caller.require_partner()?;
        let command = PartnerUpsert::try_from(request.get_ref())?;
        let subject = self.partners.upsert(caller, command).await?;
        Ok(Response::new(pb::UpsertPartnerProfileResponse {
            subject_id: subject.to_string(),
        }))
    }

    async fn pull_changes(
        &self,
        request: Request<pb::PullChangesRequest>,
    ) -> Result<Response<pb::PullChangesResponse>, Status> {
        let caller = Caller::of(&request, "PartnerSync/PullChanges")?;
        caller.require_partner()?;
        let body = request.get_ref();
        let cursor = decode_cursor("cursor", &body.cursor)?;
        let limit = match body.max_changes {
            0 => DEFAULT_PULL,
            n if n <= MAX_PULL => n,
            _ => {
                return Err(
                    ProfilesError::invalid("max_changes", format!("at most {MAX_PULL}")).into(),
                );
            }
        };
        let (shared, next) = self.partners.pull(caller, cursor, i64::from(limit)).await?;
        Ok(Response::new(pb::PullChangesResponse {
            profiles: shared
                .into_iter()
                .map(|shared| pb::SharedProfile {
                    subject_id: shared.profile.subject_id.to_string(),
                    external_id: shared.external_id.unwrap_or_default(),
                    attributes: Some(attributes::to_proto(&shared.profile.attributes)),
                    identifiers: shared
                        .profile
                        .identifiers
                        .iter()
                        .map(|stored| identifier_to_proto(&stored.identifier))
                        .collect(),
                })
                .collect(),
            next_cursor: next.encode(),
        }))
    }

    async fn pull_notices(
        &self,
        request: Request<pb::PullNoticesRequest>,
    ) -> Result<Response<pb::PullNoticesResponse>, Status> {
        let caller = Caller::of(&request, "PartnerSync/PullNotices")?;
        caller.require_partner()?;
        let limit = match request.get_ref().max_notices {
            0 => DEFAULT_PULL,
            n if n <= MAX_PULL => n,
            _ => {
                return Err(
                    ProfilesError::invalid("max_notices", format!("at most {MAX_PULL}")).into(),
                );
            }
        };
        let notices = self
            .partners
            .pending_notices(caller, i64::from(limit))
            .await?;
        Ok(Response::new(pb::PullNoticesResponse {
            notices: notices.into_iter().map(notice_to_proto).collect(),
        }))
    }

    async fn acknowledge_notices(
        &self,
        request: Request<pb::AcknowledgeNoticesRequest>,
    ) -> Result<Response<pb::AcknowledgeNoticesResponse>, Status> {
        let caller = Caller::of(&request, "PartnerSync/AcknowledgeNotices")?;
        caller.require_partner()?;
        let body = request.get_ref();
        if body.notice_ids.is_empty() || body.notice_ids.len() > MAX_PULL as usize {
            return Err(
                ProfilesError::invalid("notice_ids", format!("1 to {MAX_PULL} ids")).into(),
            );
        }
        let ids = body
            .notice_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                Uuid::parse_str(id).map_err(|_| {
                    ProfilesError::invalid(format!("notice_ids[{i}]"), "not a notice id")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let acknowledged = self.partners.acknowledge_notices(caller, ids).await?;
        Ok(Response::new(pb::AcknowledgeNoticesResponse {
            acknowledged: u32::try_from(acknowledged).unwrap_or(u32::MAX),
        }))
    }
}

fn notice_to_proto(row: NoticeRow) -> pb::RecipientNotice {
    let kind = match NoticeKind::parse(&row.kind) {
        Some(NoticeKind::Erased) => pb::NoticeKind::Erased,
        Some(NoticeKind::Restricted) => pb::NoticeKind::Restricted,
        Some(NoticeKind::RestrictionLifted) => pb::NoticeKind::RestrictionLifted,
        Some(NoticeKind::Rectified) => pb::NoticeKind::Rectified,
        None => pb::NoticeKind::Unspecified,
    };
    pb::RecipientNotice {
        notice_id: row.id.to_string(),
        kind: kind.into(),
        subject_id: row.subject_id.to_string(),
        fields: row.fields.into_iter().flatten().collect(),
        issued_at: Some(to_timestamp(row.issued_at)),
    }
}
