//! `ecrm.segmentation.v1.Rfm`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_platform::time::{from_timestamp, to_timestamp};
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::rfm_server::Rfm as RfmApi;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{Rfm, RfmParams};
use super::store::JobRow;
use crate::error::SegmentationError;

fn uuid(field: &str, value: &str) -> Result<Uuid, SegmentationError> {
    Uuid::parse_str(value).map_err(|_| SegmentationError::invalid(field, "not a UUID"))
}

fn unsigned(value: impl TryInto<u32>) -> u32 {
    value.try_into().unwrap_or_default()
}

fn job_to_proto(job: JobRow) -> pb::RfmJob {
    let state = match job.state.as_str() {
        "running" => pb::RfmJobState::Running,
        "done" => pb::RfmJobState::Done,
        "failed" => pb::RfmJobState::Failed,
        _ => pb::RfmJobState::Unspecified,
    };
    pb::RfmJob {
        job_id: job.id.to_string(),
        state: state.into(),
        as_of: Some(to_timestamp(
            job.as_of.and_time(chrono::NaiveTime::MIN).and_utc(),
        )),
        window_days: unsigned(job.window_days),
        bins: unsigned(job.bins),
        currency: job.currency,
        steps_done: unsigned(job.steps_done),
        steps_total: unsigned(job.steps_total),
        customers: job
            .customers
            .and_then(|c| u64::try_from(c).ok())
            .unwrap_or(0),
        started_at: Some(to_timestamp(job.started_at)),
        finished_at: job.finished_at.map(to_timestamp),
        error: job.error.unwrap_or_default(),
    }
}

#[derive(Debug, Clone)]
pub struct RfmService {
    pub rfm: Arc<Rfm>,
}

#[tonic::async_trait]
impl RfmApi for RfmService {
    async fn compute_rfm(
        &self,
        request: Request<pb::ComputeRfmRequest>,
    ) -> Result<Response<pb::ComputeRfmResponse>, Status> {
        let body = request.get_ref();
        let as_of = match &body.as_of {
            None => None,
            Some(at) => Some(
                from_timestamp(at)
                    .ok_or_else(|| SegmentationError::invalid("as_of", "not a valid timestamp"))?
                    .date_naive(),
            ),
        };
        let params = RfmParams::new(
            as_of,
            body.window_days,
            body.bins,
            &body.currency,
            self.rfm.rates(),
        )?;
        let job = self.rfm.start(params).await?;
        Ok(Response::new(pb::ComputeRfmResponse {
            job: Some(job_to_proto(job)),
        }))
    }

    async fn get_rfm_job(
        &self,
        request: Request<pb::GetRfmJobRequest>,
    ) -> Result<Response<pb::GetRfmJobResponse>, Status> {
        let id = uuid("job_id", &request.get_ref().job_id)?;
        let job = self.rfm.job(id).await?;
        Ok(Response::new(pb::GetRfmJobResponse {
            job: Some(job_to_proto(job)),
        }))
    }

    async fn get_rfm(
        &self,
        request: Request<pb::GetRfmRequest>,
    ) -> Result<Response<pb::GetRfmResponse>, Status> {
        let subject = uuid("subject_id", &request.get_ref().subject_id)?;
        let score = self.rfm.score(subject).await?;
        let row = score.row;
        Ok(Response::new(pb::GetRfmResponse {
            score: Some(pb::RfmScore {
                subject_id: row.subject_id.to_string(),
                recency_days: unsigned(row.recency_days),
                frequency: unsigned(row.frequency),
                monetary_minor: row.monetary_minor,
                currency: score.currency,
                r: row.r.map(unsigned).unwrap_or_default(),
                f: row.f.map(unsigned).unwrap_or_default(),
                m: row.m.map(unsigned).unwrap_or_default(),
                segment: row.segment.unwrap_or_default(),
                job_id: row.job_id.to_string(),
            }),
        }))
    }

    async fn rfm_summary(
        &self,
        _request: Request<pb::RfmSummaryRequest>,
    ) -> Result<Response<pb::RfmSummaryResponse>, Status> {
        let (job, segments) = self.rfm.summary().await?;
        Ok(Response::new(pb::RfmSummaryResponse {
            segments: segments
                .into_iter()
                .map(
                    |(segment, customers, monetary_minor)| pb::RfmSegmentSummary {
                        segment: segment.to_owned(),
                        customers,
                        monetary_minor,
                    },
                )
                .collect(),
            currency: job.currency,
            job_id: job.id.to_string(),
        }))
    }
}
