//! What outbound asks of segmentation: a segment's members, when a campaign to it starts.

use std::sync::Arc;

use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::common::v1::PageRequest;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::segments_client::SegmentsClient as Client;
use tonic::transport::Channel;
use uuid::Uuid;

const PAGE_SIZE: u32 = 500;

#[derive(Clone)]
pub struct SegmentsClient {
    channel: Channel,
    tokens: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for SegmentsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentsClient").finish_non_exhaustive()
    }
}

impl SegmentsClient {
    pub fn new(channel: Channel, tokens: Arc<dyn TokenSource>) -> Self {
        Self { channel, tokens }
    }

    /// Every member of `segment` now, page after page.
    pub async fn members(&self, segment: &str) -> Result<Vec<Uuid>, tonic::Status> {
        let token = self
            .tokens
            .token("segmentation", &["segments.read".to_owned()])
            .await?;
        let mut client = Client::new(self.channel.clone());
        let mut members = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = bearer_request(
                &token,
                pb::GetMembersRequest {
                    segment: segment.to_owned(),
                    page: Some(PageRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                    }),
                },
            )?;
            let response = client.get_members(request).await?.into_inner();
            members.extend(
                response
                    .members
                    .iter()
                    .filter_map(|m| Uuid::parse_str(&m.subject_id).ok()),
            );
            page_token = response.page.map(|p| p.next_page_token).unwrap_or_default();
            if page_token.is_empty() {
                return Ok(members);
            }
        }
    }
}
