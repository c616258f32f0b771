//! `ecrm.segmentation.v1.Segments`: decode, call the domain, encode.

use std::pin::Pin;
use std::sync::Arc;

use ecrm_platform::feed::FeedCursor;
use ecrm_platform::paging::Page;
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::segments_server::Segments as SegmentsApi;
use futures::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{Segments, check_name};
use super::members::{EventRow, Reason};
use super::store::SegmentRow;
use crate::error::SegmentationError;

fn segment_to_proto(row: SegmentRow) -> pb::Segment {
    pb::Segment {
        name: row.name,
        description: row.description,
        rule: row.rule,
        fields: row.fields.into_iter().flatten().collect(),
        created_at: Some(to_timestamp(row.created_at)),
        populated_at: row.populated_at.map(to_timestamp),
    }
}

/// Segments a membership stream may follow at most.
const MAX_WATCHED_SEGMENTS: usize = 100;

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchMembershipResponse, Status>> + Send>>;

fn reason_to_proto(reason: &str) -> pb::MembershipReason {
    match Reason::parse(reason) {
        Some(Reason::Evaluated) => pb::MembershipReason::Evaluated,
        Some(Reason::Restricted) => pb::MembershipReason::Restricted,
        Some(Reason::Objected) => pb::MembershipReason::Objected,
        Some(Reason::Merged) => pb::MembershipReason::Merged,
        Some(Reason::Erased) => pb::MembershipReason::Erased,
        None => pb::MembershipReason::Unspecified,
    }
}

fn event_to_proto(event: EventRow) -> pb::WatchMembershipResponse {
    pb::WatchMembershipResponse {
        cursor: FeedCursor {
            tx: event.tx,
            seq: event.seq,
        }
        .encode(),
        change: Some(pb::MembershipChange {
            segment: event.segment,
            subject_id: event.subject_id.to_string(),
            joined: event.joined,
            reason: reason_to_proto(&event.reason).into(),
            occurred_at: Some(to_timestamp(event.occurred_at)),
        }),
    }
}

fn subject(value: &str) -> Result<Uuid, SegmentationError> {
    Uuid::parse_str(value).map_err(|_| SegmentationError::invalid("subject_id", "not a UUID"))
}

#[derive(Debug, Clone)]
pub struct SegmentsService {
    pub segments: Arc<Segments>,
}

#[tonic::async_trait]
impl SegmentsApi for SegmentsService {
    async fn define_segment(
        &self,
        request: Request<pb::DefineSegmentRequest>,
    ) -> Result<Response<pb::DefineSegmentResponse>, Status> {
        let by = ecrm_auth::Principal::of(&request)?.subject.clone();
        let Some(segment) = request.into_inner().segment else {
            return Err(SegmentationError::invalid("segment", "is required").into());
        };
        let (row, created) = self
            .segments
            .define(
                by,
                segment.name,
                segment.description.trim().to_owned(),
                segment.rule,
            )
            .await?;
        Ok(Response::new(pb::DefineSegmentResponse {
            segment: Some(segment_to_proto(row)),
            created,
        }))
    }

    async fn list_segments(
        &self,
        _request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        let segments = self.segments.list().await?;
        Ok(Response::new(pb::ListSegmentsResponse {
            segments: segments.into_iter().map(segment_to_proto).collect(),
        }))
    }

    async fn is_member(
        &self,
        request: Request<pb::IsMemberRequest>,
    ) -> Result<Response<pb::IsMemberResponse>, Status> {
        let body = request.into_inner();
        check_name("segment", &body.segment)?;
        let membership = self
            .segments
            .membership(body.segment, subject(&body.subject_id)?)
            .await?;
        Ok(Response::new(pb::IsMemberResponse {
            member: membership.member,
        }))
    }

    async fn explain_membership(
        &self,
        request: Request<pb::ExplainMembershipRequest>,
    ) -> Result<Response<pb::ExplainMembershipResponse>, Status> {
        let body = request.into_inner();
        check_name("segment", &body.segment)?;
        let membership = self
            .segments
            .membership(body.segment, subject(&body.subject_id)?)
            .await?;
        Ok(Response::new(pb::ExplainMembershipResponse {
            member: membership.member,
            restricted: membership.restricted,
            objected: membership.objected,
            conditions: membership
                .explanation
                .map(|e| e.conditions)
                .unwrap_or_default()
                .into_iter()
                .map(|c| pb::ConditionResult {
                    condition: c.condition,
                    field: c.field,
                    value: c.value.map(|v| v.to_string()).unwrap_or_default(),
                    result: c.result,
                })
                .collect(),
        }))
    }

    async fn get_members(
        &self,
        request: Request<pb::GetMembersRequest>,
    ) -> Result<Response<pb::GetMembersResponse>, Status> {
        let body = request.into_inner();
        check_name("segment", &body.segment)?;
        let page = Page::from_request(body.page.as_ref())?;
        let members = self.segments.members(body.segment, page).await?;
        Ok(Response::new(pb::GetMembersResponse {
            members: members
                .members
                .into_iter()
                .map(|(subject, joined_at)| pb::Member {
                    subject_id: subject.to_string(),
                    joined_at: Some(to_timestamp(joined_at)),
                })
                .collect(),
            page: Some(members.page),
            total: members.total,
            cursor: members.cursor.encode(),
        }))
    }

    type WatchMembershipStream = WatchStream;

    async fn watch_membership(
        &self,
        request: Request<pb::WatchMembershipRequest>,
    ) -> Result<Response<Self::WatchMembershipStream>, Status> {
        let body = request.into_inner();
        let cursor = FeedCursor::decode(&body.cursor).ok_or_else(|| {
            SegmentationError::invalid("cursor", "not a cursor from this service")
        })?;
        if body.segments.len() > MAX_WATCHED_SEGMENTS {
            return Err(SegmentationError::invalid(
                "segments",
                format!("at most {MAX_WATCHED_SEGMENTS}"),
            )
            .into());
        }
        for (i, name) in body.segments.iter().enumerate() {
            check_name(&format!("segments[{i}]"), name)?;
        }
        self.segments.check_cursor(cursor).await?;
        let stream = self
            .segments
            .watch(cursor, body.segments)
            .map(|event| event.map(event_to_proto));
        Ok(Response::new(Box::pin(stream)))
    }
}
