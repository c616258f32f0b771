//! Campaigns as a campaign manager drives them through outbound's API, and a way to hold a
//! message in the gate while a test changes its campaign.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::suppressions_client::SuppressionsClient;
use ecrm_testkit::ReceivedMail;

use super::call;
use super::sending::Sending;

/// The mails `address` received.
pub fn mails_to(suite: &Sending, address: &str) -> Vec<ReceivedMail> {
    suite
        .smtp
        .messages()
        .into_iter()
        .filter(|mail| mail.rcpt_to == [address])
        .collect()
}

/// Blocked counts by reason, as the statistics give them.
pub fn blocked_by_reason(stats: &pb::GetCampaignStatsResponse) -> BTreeMap<String, u64> {
    stats
        .blocked_by_reason
        .iter()
        .map(|b| (b.reason().as_str_name().to_owned(), b.count))
        .collect()
}

/// Counts by reason, as [`blocked_by_reason`] gives them.
pub fn reasons(list: &[(pb::MessageReason, u64)]) -> BTreeMap<String, u64> {
    list.iter()
        .map(|(reason, count)| (reason.as_str_name().to_owned(), *count))
        .collect()
}

/// The campaigns API as a campaign manager calls it.
impl Sending {
    pub async fn create_campaign(
        &self,
        campaign: pb::Campaign,
        subject_ids: &[String],
    ) -> Result<pb::Campaign, tonic::Status> {
        self.campaigns()
            .create_campaign(call(
                &self.sender(),
                pb::CreateCampaignRequest {
                    campaign: Some(campaign),
                    subject_ids: subject_ids.to_vec(),
                },
            ))
            .await
            .map(|r| r.into_inner().campaign.unwrap())
    }

    pub async fn add_recipients(
        &self,
        id: &str,
        subject_ids: &[String],
    ) -> Result<pb::Campaign, tonic::Status> {
        self.campaigns()
            .add_campaign_recipients(call(
                &self.sender(),
                pb::AddCampaignRecipientsRequest {
                    campaign_id: id.to_owned(),
                    subject_ids: subject_ids.to_vec(),
                },
            ))
            .await
            .map(|r| r.into_inner().campaign.unwrap())
    }

    pub async fn start_campaign(&self, id: &str) -> Result<pb::Campaign, tonic::Status> {
        self.campaigns()
            .start_campaign(call(
                &self.sender(),
                pb::StartCampaignRequest {
                    campaign_id: id.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().campaign.unwrap())
    }

    pub async fn pause_campaign(&self, id: &str) -> Result<pb::Campaign, tonic::Status> {
        self.campaigns()
            .pause_campaign(call(
                &self.sender(),
                pb::PauseCampaignRequest {
                    campaign_id: id.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().campaign.unwrap())
    }

    pub async fn resume_campaign(&self, id: &str) -> Result<pb::Campaign, tonic::Status> {
        self.campaigns()
            .resume_campaign(call(
                &self.sender(),
                pb::ResumeCampaignRequest {
                    campaign_id: id.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().campaign.unwrap())
    }

    pub async fn cancel_campaign(&self, id: &str) -> Result<pb::Campaign, tonic::Status> {
        self.campaigns()
            .cancel_campaign(call(
                &self.sender(),
                pb::CancelCampaignRequest {
                    campaign_id: id.to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().campaign.unwrap())
    }

    pub async fn get_campaign(&self, id: &str) -> pb::Campaign {
        self.campaigns()
            .get_campaign(call(
                &self.sender(),
                pb::GetCampaignRequest {
                    campaign_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .campaign
            .unwrap()
    }

    pub async fn stats(&self, id: &str) -> pb::GetCampaignStatsResponse {
        self.campaigns()
            .get_campaign_stats(call(
                &self.sender(),
                pb::GetCampaignStatsRequest {
                    campaign_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits until the campaign's statistics satisfy `done`; returns them.
    pub async fn stats_until(
        &self,
        id: &str,
        done: impl Fn(&pb::GetCampaignStatsResponse) -> bool,
    ) -> pb::GetCampaignStatsResponse {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stats = self.stats(id).await;
            if done(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "the campaign stayed at {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates the campaign to `subject_ids` and starts it; returns its id.
    pub async fn run_campaign(&self, campaign: pb::Campaign, subject_ids: &[String]) -> String {
        let created = self.create_campaign(campaign, subject_ids).await.unwrap();
        let started = self.start_campaign(&created.campaign_id).await.unwrap();
        assert_eq!(started.state(), pb::CampaignState::Running);
        assert_eq!(started.recipients, subject_ids.len() as u64);
        created.campaign_id
    }

    /// The campaign's message to `subject`.
    pub async fn campaign_message(&self, campaign_id: &str, subject: &str) -> pb::Message {
        let mut messages: Vec<pb::Message> = self
            .messages_of(subject)
            .await
            .into_iter()
            .filter(|m| m.campaign_id == campaign_id)
            .collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        messages.remove(0)
    }

    /// Waits until none of the campaign's messages to `subjects` is in a channel's hands.
    pub async fn none_sending(&self, campaign_id: &str, subjects: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        'wait: loop {
            for subject in subjects {
                let message = self.campaign_message(campaign_id, subject).await;
                if message.status() == pb::MessageStatus::Sending {
                    assert!(Instant::now() < deadline, "{message:?} stayed sending");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'wait;
                }
            }
            return;
        }
    }

    pub async fn suppress(
        &self,
        address: &str,
        scope: pb::SuppressionScope,
        reason: pb::SuppressionReason,
    ) {
        self.outbound
            .client(SuppressionsClient::new)
            .add_suppression(call(
                &self.sender(),
                pb::AddSuppressionRequest {
                    channel: pb::Channel::Email.into(),
                    address: address.to_owned(),
                    scope: scope.into(),
                    reason: reason.into(),
                    note: "asked by phone".to_owned(),
                },
            ))
            .await
            .unwrap();
    }

    /// `count` customers who subscribed to the newsletter by email.
    pub async fn subscribers(&self, prefix: &str, count: usize) -> Vec<(String, String)> {
        let mut subscribers = Vec::with_capacity(count);
        for i in 0..count {
            let address = format!("{prefix}{i}@example.com");
            let subject = self.customer(&address, None, None, None).await;
            self.grant(&subject, consent::Channel::Email).await;
            subscribers.push((subject, address));
        }
        subscribers
    }
}

/// Holds the lock the gate takes on a subject to count their marketing messages against the
/// frequency cap, so that a message of theirs stays in the gate, between consent's answer and
/// its hand-over to the channel, until the lock is released.
pub struct CapLock {
    conn: diesel::PgConnection,
    key: String,
}

impl CapLock {
    pub fn take(suite: &Sending, subject: &str) -> Self {
        let mut lock = Self {
            conn: suite.admin_connection(),
            key: uuid::Uuid::parse_str(subject).unwrap().to_string(),
        };
        lock.run("pg_advisory_lock");
        lock
    }

    fn run(&mut self, function: &str) {
        use diesel::RunQueryDsl as _;
        diesel::sql_query(format!("SELECT {function}(hashtextextended($1, 7))"))
            .bind::<diesel::sql_types::Text, _>(&self.key)
            .execute(&mut self.conn)
            .unwrap();
    }

    /// Waits until a worker waits for the lock.
    pub async fn until_waited_for(&mut self) {
        use diesel::RunQueryDsl as _;
        #[derive(diesel::QueryableByName)]
        struct Waiting {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            waiting: i64,
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: Waiting = diesel::sql_query(
                "SELECT count(*) AS waiting FROM pg_locks \
                 WHERE locktype = 'advisory' AND NOT granted AND database = \
                 (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .get_result(&mut self.conn)
            .unwrap();
            if waiting.waiting > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "no worker came to the gate");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn release(mut self) {
        self.run("pg_advisory_unlock");
    }
}
