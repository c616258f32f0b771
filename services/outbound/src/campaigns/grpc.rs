//! `ecrm.outbound.v1.Campaigns`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_platform::time::{from_timestamp, to_timestamp};
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::campaigns_server::Campaigns as CampaignsApi;
use tonic::{Request, Response, Status};

use super::domain::{Campaigns, NewCampaign, State, Stats};
use super::store::CampaignRow;
use crate::error::OutboundError;
use crate::messages::grpc::reason_to_proto;
use crate::templates::grpc::{channel_from_proto, channel_to_proto};

fn state_to_proto(value: &str) -> pb::CampaignState {
    match State::parse(value) {
        Some(State::Draft) => pb::CampaignState::Draft,
        Some(State::Running) => pb::CampaignState::Running,
        Some(State::Paused) => pb::CampaignState::Paused,
        Some(State::Cancelled) => pb::CampaignState::Cancelled,
        Some(State::Completed) => pb::CampaignState::Completed,
        None => pb::CampaignState::Unspecified,
    }
}

fn campaign_to_proto(row: CampaignRow) -> pb::Campaign {
    pb::Campaign {
        campaign_id: row.campaign_id.to_string(),
        name: row.name,
        explicit_list: row.segment.is_none(),
        segment: row.segment.unwrap_or_default(),
        channel: channel_to_proto(&row.channel).into(),
        template_key: row.template_key,
        locale: row.locale.unwrap_or_default(),
        variables_json: row.variables.to_string(),
        purpose_key: row.purpose_key,
        scheduled_at: row.scheduled_at.map(to_timestamp),
        per_second: row
            .per_second
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or_default(),
        state: state_to_proto(&row.state).into(),
        marketing: row.marketing,
        recipients: u64::try_from(row.recipients).unwrap_or_default(),
        created_by: row.created_by,
        created_at: Some(to_timestamp(row.created_at)),
        started_at: row.started_at.map(to_timestamp),
    }
}

fn stats_to_proto(row: &CampaignRow, stats: Stats) -> pb::GetCampaignStatsResponse {
    pb::GetCampaignStatsResponse {
        state: state_to_proto(&row.state).into(),
        recipients: u64::try_from(row.recipients).unwrap_or_default(),
        queued: stats.queued,
        sent: stats.sent,
        deferred: stats.deferred,
        blocked: stats.blocked.values().sum(),
        blocked_by_reason: stats
            .blocked
            .into_iter()
            .map(|(reason, count)| pb::BlockedCount {
                reason: reason_to_proto(Some(&reason)).into(),
                count,
            })
            .collect(),
        failed: stats.failed,
        cancelled: stats.cancelled,
    }
}

#[derive(Debug, Clone)]
pub struct CampaignsService {
    pub campaigns: Arc<Campaigns>,
}

#[tonic::async_trait]
impl CampaignsApi for CampaignsService {
    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::CreateCampaignResponse>, Status> {
        let by = ecrm_auth::Principal::of(&request)?.subject.clone();
        let body = request.into_inner();
        let campaign = body
            .campaign
            .ok_or_else(|| OutboundError::invalid("campaign", "required"))?;
        let segment = Some(campaign.segment).filter(|s| !s.is_empty());
        if segment.is_some() == campaign.explicit_list {
            return Err(OutboundError::invalid(
                "campaign.segment",
                "exactly one audience: a segment, or explicit_list",
            )
            .into());
        }
        let scheduled_at = campaign
            .scheduled_at
            .map(|t| {
                from_timestamp(&t).ok_or_else(|| {
                    OutboundError::invalid("campaign.scheduled_at", "not a valid time")
                })
            })
            .transpose()?;
        let row = self
            .campaigns
            .create(
                by,
                NewCampaign {
                    name: campaign.name,
                    segment,
                    channel: channel_from_proto("campaign.channel", campaign.channel)?,
                    template_key: campaign.template_key,
                    locale: campaign.locale,
                    variables_json: campaign.variables_json,
                    purpose_key: campaign.purpose_key,
                    scheduled_at,
                    per_second: campaign.per_second,
                    subject_ids: body.subject_ids,
                },
            )
            .await?;
        Ok(Response::new(pb::CreateCampaignResponse {
            campaign: Some(campaign_to_proto(row)),
        }))
    }

    async fn add_campaign_recipients(
        &self,
        request: Request<pb::AddCampaignRecipientsRequest>,
    ) -> Result<Response<pb::AddCampaignRecipientsResponse>, Status> {
        let body = request.into_inner();
        let row = self
            .campaigns
            .add_recipients(&body.campaign_id, &body.subject_ids)
            .await?;
        Ok(Response::new(pb::AddCampaignRecipientsResponse {
            campaign: Some(campaign_to_proto(row)),
        }))
    }

    async fn start_campaign(
        &self,
        request: Request<pb::StartCampaignRequest>,
    ) -> Result<Response<pb::StartCampaignResponse>, Status> {
        let by = ecrm_auth::Principal::of(&request)?.subject.clone();
        let row = self
            .campaigns
            .start(by, &request.get_ref().campaign_id)
            .await?;
        Ok(Response::new(pb::StartCampaignResponse {
            campaign: Some(campaign_to_proto(row)),
        }))
    }

    async fn pause_campaign(
        &self,
        request: Request<pb::PauseCampaignRequest>,
    ) -> Result<Response<pb::PauseCampaignResponse>, Status> {
        let row = self.campaigns.pause(&request.get_ref().campaign_id).await?;
        Ok(Response::new(pb::PauseCampaignResponse {
            campaign: Some(campaign_to_proto(row)),
        }))
    }

    async fn resume_campaign(
        &self,
        request: Request<pb::ResumeCampaignRequest>,
    ) -> Result<Response<pb::ResumeCampaignResponse>, Status> {
        let row = self
            .campaigns
            .resume(&request.get_ref().campaign_id)
            .await?;
        Ok(Response::new(pb::ResumeCampaignResponse {
            campaign: Some(campaign_to_proto(row)),
        }))
    }

    async fn cancel_campaign(
        &self,
        request: Request<pb::CancelCampaignRequest>,
    ) -> Result<Response<pb::CancelCampaignResponse>, Status> {
        let row = self
            .campaigns
            .cancel(&request.get_ref().campaign_id)
            .await?;
        Ok(Response::new(pb::CancelCampaignResponse {
            campaign: Some(campaign_to_proto(row)),
        }))
    }

    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::GetCampaignResponse>, Status> {
        let (row, _) = self.campaigns.get(&request.get_ref().campaign_id).await?;
        Ok(Response::new(pb::GetCampaignResponse {
            campaign: Some(campaign_to_proto(row)),
        }))
    }

    async fn get_campaign_stats(
        &self,
        request: Request<pb::GetCampaignStatsRequest>,
    ) -> Result<Response<pb::GetCampaignStatsResponse>, Status> {
        let (row, stats) = self.campaigns.get(&request.get_ref().campaign_id).await?;
        Ok(Response::new(stats_to_proto(&row, stats)))
    }
}
