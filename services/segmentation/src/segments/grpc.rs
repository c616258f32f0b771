//! `ecrm.segmentation.v1.Segments`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::segments_server::Segments as SegmentsApi;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{Segments, check_name};
use super::store::SegmentRow;
use crate::error::SegmentationError;

fn segment_to_proto(row: SegmentRow) -> pb::Segment {
    pb::Segment {
        name: row.name,
        description: row.description,
        rule: row.rule,
        fields: row.fields.into_iter().flatten().collect(),
        created_at: Some(to_timestamp(row.created_at)),
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
}
