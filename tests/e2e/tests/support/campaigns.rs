//! Campaigns as a marketer runs them: readers who agreed to a newsletter, its template, a
//! campaign started, and its stats once every message is settled.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::identity::v1 as identity;
use ecrm_proto::ecrm::outbound::v1 as outbound;
use ecrm_proto::ecrm::outbound::v1::campaigns_client::CampaignsClient;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use ecrm_suite::Member;

use super::customers::{PurposeSpec, customer, decide, define_purpose};
use super::{Caller, Journey, authorized};

/// The purpose and the template of [`newsletter_readers`] and [`newsletter`].
pub const NEWSLETTER: &str = "newsletter";

/// `count` customers of a shop (`reader<n>@example.com`), each agreeing to the newsletter by
/// email; their subject ids.
pub async fn newsletter_readers(journey: &Journey, count: usize) -> Vec<String> {
    let admin = &journey.admin;
    let shop = admin
        .create_account(
            "shop",
            identity::PrincipalKind::Internal,
            "",
            &["profiles.write", "consent.write"],
        )
        .await;
    let notice = define_purpose(
        journey,
        admin,
        PurposeSpec {
            key: NEWSLETTER,
            basis: common::LawfulBasis::Consent,
            channels: &[consent::Channel::Email],
            categories: &["email"],
            direct_marketing: true,
            notice: "Our newsletter by email. Unsubscribe in one click.",
        },
    )
    .await;
    let mut subjects = Vec::with_capacity(count);
    for n in 0..count {
        let subject = customer(journey, &shop, &format!("reader{n}@example.com"), "Reader").await;
        decide(
            journey,
            &shop,
            &subject,
            NEWSLETTER,
            consent::Channel::Email,
            consent::Decision::Granted,
            &notice,
        )
        .await;
        subjects.push(subject);
    }
    subjects
}

/// Stores the newsletter's email template and returns a campaign of it to `subjects`, sending
/// `per_second` at most, not started.
pub async fn newsletter(journey: &Journey, subjects: &[String], per_second: u32) -> String {
    let admin = &journey.admin;
    TemplatesClient::new(journey.channel(Member::Outbound))
        .upsert_template(authorized(
            &admin.token(Member::Outbound).await,
            outbound::UpsertTemplateRequest {
                template: Some(outbound::Template {
                    key: NEWSLETTER.to_owned(),
                    channel: outbound::Channel::Email.into(),
                    locale: "en".to_owned(),
                    subject: "This week".to_owned(),
                    body: "<p>News.</p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>"
                        .to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let campaign = outbound::Campaign {
        name: "weekly".to_owned(),
        explicit_list: true,
        channel: outbound::Channel::Email.into(),
        template_key: NEWSLETTER.to_owned(),
        variables_json: "{}".to_owned(),
        purpose_key: NEWSLETTER.to_owned(),
        per_second,
        ..Default::default()
    };
    create(journey, admin, campaign, subjects.to_vec())
        .await
        .campaign_id
}

/// Creates `campaign`, to `subjects` when it names no segment.
pub async fn create(
    journey: &Journey,
    marketer: &Caller,
    campaign: outbound::Campaign,
    subjects: Vec<String>,
) -> outbound::Campaign {
    CampaignsClient::new(journey.channel(Member::Outbound))
        .create_campaign(authorized(
            &marketer.token(Member::Outbound).await,
            outbound::CreateCampaignRequest {
                campaign: Some(campaign),
                subject_ids: subjects,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap()
}

pub async fn start(journey: &Journey, marketer: &Caller, campaign: &str) {
    CampaignsClient::new(journey.channel(Member::Outbound))
        .start_campaign(authorized(
            &marketer.token(Member::Outbound).await,
            outbound::StartCampaignRequest {
                campaign_id: campaign.to_owned(),
            },
        ))
        .await
        .unwrap();
}

/// Every one of `count` recipients got exactly one mail: none missed, none twice.
pub fn assert_one_mail_each(journey: &Journey, count: usize) {
    let mails = journey.smtp.messages();
    let recipients: HashSet<&str> = mails
        .iter()
        .flat_map(|mail| mail.rcpt_to.iter().map(String::as_str))
        .collect();
    assert_eq!(recipients.len(), count, "a reader got no mail");
    assert_eq!(mails.len(), count, "a reader got the mail twice");
}

/// The campaign's stats once it has completed (every message settled), within `within`.
pub async fn completed(
    journey: &Journey,
    marketer: &Caller,
    campaign: &str,
    within: Duration,
) -> outbound::GetCampaignStatsResponse {
    let token = marketer.token(Member::Outbound).await;
    let mut campaigns = CampaignsClient::new(journey.channel(Member::Outbound));
    let deadline = Instant::now() + within;
    loop {
        let stats = campaigns
            .get_campaign_stats(authorized(
                &token,
                outbound::GetCampaignStatsRequest {
                    campaign_id: campaign.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if stats.state() == outbound::CampaignState::Completed {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "the campaign is not over: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
