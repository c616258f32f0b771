//! A customer's whole life in the suite: signs up and agrees to marketing email, buys, is
//! scored and targeted, unsubscribes with one click, and is erased on request.

use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::identity::v1 as identity;
use ecrm_proto::ecrm::outbound::v1 as outbound;
use ecrm_proto::ecrm::outbound::v1::messages_client::MessagesClient;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use ecrm_proto::ecrm::segmentation::v1 as segmentation;
use ecrm_proto::ecrm::segmentation::v1::rfm_client::RfmClient;
use ecrm_proto::ecrm::segmentation::v1::segments_client::SegmentsClient;
use ecrm_suite::Member;
use ecrm_testkit::ReceivedMail;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::codegen::Bytes;

use crate::support::customers::{
    OrderSpec, PurposeSpec, consent_state, customer, decide, define_purpose, record_orders,
};
use crate::support::{Caller, DEADLINE, Journey, authorized, campaigns, eventually};

pub(crate) mod erasure;

/// The purpose of the shop's marketing emails.
const MARKETING: &str = "marketing_email";
/// The segment campaigns go to: every customer who bought.
const BUYERS: &str = "buyers";
/// The marketing email's template: its unsubscribe link is the one outbound provides.
const SALE: &str = "seasonal_sale";

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_who_buys_is_scored_targeted_unsubscribes_and_is_then_erased_everywhere() {
    let journey = Journey::start().await;
    let admin = &journey.admin;
    // The shop's backend signs customers up, records their decisions and their orders with an
    // account of its own, made by the admin.
    let shop = admin
        .create_account(
            "web shop",
            identity::PrincipalKind::Internal,
            "",
            &[
                "profiles.read",
                "profiles.write",
                "events.write",
                "consent.read",
                "consent.write",
            ],
        )
        .await;
    let notice = define_purpose(
        &journey,
        admin,
        PurposeSpec {
            key: MARKETING,
            basis: common::LawfulBasis::Consent,
            channels: &[consent::Channel::Email],
            categories: &["email", "given_name"],
            direct_marketing: true,
            notice: "Our offers by email, at most once a week. Unsubscribe in one click.",
        },
    )
    .await;

    let ada = customer(&journey, &shop, "ada@example.com", "Ada").await;
    // Another buyer, who was never asked about marketing email.
    let grace = customer(&journey, &shop, "grace@example.com", "Grace").await;
    let granted = decide(
        &journey,
        &shop,
        &ada,
        MARKETING,
        consent::Channel::Email,
        consent::Decision::Granted,
        &notice,
    )
    .await;
    assert_eq!(granted.notice_version, notice);
    record_orders(
        &journey,
        &shop,
        &[
            OrderSpec {
                subject: &ada,
                order_id: "A-1001",
                days_ago: 3,
                amount_minor: 4_500,
            },
            OrderSpec {
                subject: &ada,
                order_id: "A-1002",
                days_ago: 1,
                amount_minor: 8_000,
            },
            OrderSpec {
                subject: &grace,
                order_id: "G-2001",
                days_ago: 60,
                amount_minor: 2_000,
            },
        ],
    )
    .await;

    scored_and_targeted(&journey, admin, &ada, &grace).await;
    let mail = first_campaign_reaches_only_who_agreed(&journey, admin, &ada, &grace).await;
    unsubscribes_in_one_click(&journey, &shop, &ada, &mail).await;
    second_campaign_does_not_reach_them(&journey, admin, &ada).await;

    erasure::is_carried_out_everywhere(&journey, admin, &ada, "ada@example.com").await;
    journey.stop().await;
}

/// Segmentation's projection catches up with the orders: the segment holds both buyers, and
/// RFM scores the recent, frequent buyer above the other.
async fn scored_and_targeted(journey: &Journey, marketer: &Caller, ada: &str, grace: &str) {
    let token = marketer.token(Member::Segmentation).await;
    let mut segments = SegmentsClient::new(journey.channel(Member::Segmentation));
    segments
        .define_segment(authorized(
            &token,
            segmentation::DefineSegmentRequest {
                segment: Some(segmentation::Segment {
                    name: BUYERS.to_owned(),
                    description: "Customers with at least one order".to_owned(),
                    rule: "orders >= 1".to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let mut expected = vec![ada.to_owned(), grace.to_owned()];
    expected.sort();
    eventually("both buyers in the segment", || {
        let (mut segments, token, expected) = (segments.clone(), token.clone(), expected.clone());
        async move {
            // Refused while the segment is first populated: its list would be partial.
            let members = segments
                .get_members(authorized(
                    &token,
                    segmentation::GetMembersRequest {
                        segment: BUYERS.to_owned(),
                        page: None,
                    },
                ))
                .await
                .ok()?
                .into_inner();
            let subjects: Vec<String> = members.members.into_iter().map(|m| m.subject_id).collect();
            (subjects == expected).then_some(())
        }
    })
    .await;

    // Scores come from the projection as it is now, with every order in it.
    let mut rfm = RfmClient::new(journey.channel(Member::Segmentation));
    let job = rfm
        .compute_rfm(authorized(
            &token,
            segmentation::ComputeRfmRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    eventually("the RFM computation", || {
        let (mut rfm, token, id) = (rfm.clone(), token.clone(), job.job_id.clone());
        async move {
            let job = rfm
                .get_rfm_job(authorized(
                    &token,
                    segmentation::GetRfmJobRequest { job_id: id },
                ))
                .await
                .unwrap()
                .into_inner()
                .job
                .unwrap();
            assert_ne!(job.state(), segmentation::RfmJobState::Failed, "{job:?}");
            (job.state() == segmentation::RfmJobState::Done).then_some(())
        }
    })
    .await;
    let score = |subject: &str| {
        let (mut rfm, token, subject) = (rfm.clone(), token.clone(), subject.to_owned());
        async move {
            rfm.get_rfm(authorized(
                &token,
                segmentation::GetRfmRequest {
                    subject_id: subject,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .score
            .unwrap()
        }
    };
    let (ada_score, grace_score) = (score(ada).await, score(grace).await);
    assert_eq!(
        (
            ada_score.frequency,
            ada_score.monetary_minor,
            ada_score.currency.as_str()
        ),
        (2, 12_500, "EUR"),
        "{ada_score:?}"
    );
    assert_eq!(grace_score.frequency, 1, "{grace_score:?}");
    // Whole days to the day scored: a day more when run just after midnight.
    assert!((1..=2).contains(&ada_score.recency_days), "{ada_score:?}");
    assert!(
        (60..=61).contains(&grace_score.recency_days),
        "{grace_score:?}"
    );
    assert!(
        ada_score.r > grace_score.r && ada_score.f > grace_score.f,
        "{ada_score:?} {grace_score:?}"
    );
    assert!(!ada_score.segment.is_empty());
}

/// A campaign to the segment: the customer who agreed gets the email with one-click
/// unsubscribe headers (RFC 8058); the one never asked is refused by the gate.
async fn first_campaign_reaches_only_who_agreed(
    journey: &Journey,
    marketer: &Caller,
    ada: &str,
    grace: &str,
) -> ReceivedMail {
    TemplatesClient::new(journey.channel(Member::Outbound))
        .upsert_template(authorized(
            &marketer.token(Member::Outbound).await,
            outbound::UpsertTemplateRequest {
                template: Some(outbound::Template {
                    key: SALE.to_owned(),
                    channel: outbound::Channel::Email.into(),
                    locale: "en".to_owned(),
                    subject: "{{ season }} sale".to_owned(),
                    body: "<p>Our {{ season }} sale is on.</p>\
                           <p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>"
                        .to_owned(),
                    variables: vec!["season".to_owned()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let (campaign, stats) = run_campaign(journey, marketer, "Spring").await;
    assert_eq!(
        (stats.recipients, stats.sent, stats.blocked, stats.failed),
        (2, 1, 1, 0),
        "{stats:?}"
    );
    let refused = campaign_message(journey, marketer, &campaign, grace).await;
    assert_eq!(refused.status(), outbound::MessageStatus::Blocked);
    assert_eq!(refused.reason(), outbound::MessageReason::NeverAsked);
    let sent = campaign_message(journey, marketer, &campaign, ada).await;
    assert_eq!(sent.status(), outbound::MessageStatus::Sent, "{sent:?}");
    assert!(sent.marketing);

    let mails = journey.smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = mails.into_iter().next().unwrap();
    assert_eq!(mail.rcpt_to, ["ada@example.com"]);
    assert_eq!(mail.header("Subject").as_deref(), Some("Spring sale"));
    let url = unsubscribe_url(&mail);
    let prefix = format!("{}/u/", journey.suite().public_url());
    assert!(url.starts_with(&prefix), "{url}");
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    // The body links to the same page.
    let token = &url[prefix.len()..];
    assert!(mail.html().unwrap().contains(token), "{}", mail.data);
    mail
}

/// The mail client's one-click POST (RFC 8058) withdraws the consent in the ledger.
async fn unsubscribes_in_one_click(
    journey: &Journey,
    shop: &Caller,
    ada: &str,
    mail: &ReceivedMail,
) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(unsubscribe_url(mail))
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from_static(b"List-Unsubscribe=One-Click")))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);

    let withdrawn = eventually("the withdrawal in consent's state", || async move {
        consent_state(journey, shop, ada)
            .await
            .into_iter()
            .find(|state| {
                state.purpose_key == MARKETING
                    && state.channel() == consent::Channel::Email
                    && state.decision() == consent::Decision::Withdrawn
            })
    })
    .await;
    assert!(!withdrawn.expired);
}

/// After the withdrawal the same campaign again reaches no one: the gate refuses the message
/// with consent's reason, and nothing more arrives.
async fn second_campaign_does_not_reach_them(journey: &Journey, marketer: &Caller, ada: &str) {
    let (campaign, stats) = run_campaign(journey, marketer, "Summer").await;
    assert_eq!(
        (stats.recipients, stats.sent, stats.blocked),
        (2, 0, 2),
        "{stats:?}"
    );
    let refused = campaign_message(journey, marketer, &campaign, ada).await;
    assert_eq!(refused.status(), outbound::MessageStatus::Blocked);
    assert_eq!(
        refused.reason(),
        outbound::MessageReason::Withdrawn,
        "{refused:?}"
    );
    assert_eq!(journey.smtp.count(), 1);
}

/// Creates and starts a campaign of the sale template to the buyers; its id and its stats
/// once every message is settled.
async fn run_campaign(
    journey: &Journey,
    marketer: &Caller,
    season: &str,
) -> (String, outbound::GetCampaignStatsResponse) {
    let created = campaigns::create(
        journey,
        marketer,
        outbound::Campaign {
            name: format!("{season} sale"),
            segment: BUYERS.to_owned(),
            channel: outbound::Channel::Email.into(),
            template_key: SALE.to_owned(),
            variables_json: serde_json::json!({ "season": season }).to_string(),
            purpose_key: MARKETING.to_owned(),
            ..Default::default()
        },
        vec![],
    )
    .await;
    assert!(created.marketing);
    let id = created.campaign_id;
    campaigns::start(journey, marketer, &id).await;
    let stats = campaigns::completed(journey, marketer, &id, DEADLINE).await;
    (id, stats)
}

/// The subject's message of the campaign.
async fn campaign_message(
    journey: &Journey,
    marketer: &Caller,
    campaign: &str,
    subject: &str,
) -> outbound::Message {
    MessagesClient::new(journey.channel(Member::Outbound))
        .list_messages(authorized(
            &marketer.token(Member::Outbound).await,
            outbound::ListMessagesRequest {
                subject_id: subject.to_owned(),
                page: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .messages
        .into_iter()
        .find(|message| message.campaign_id == campaign)
        .unwrap_or_else(|| panic!("no message of campaign {campaign} for {subject}"))
}

/// The URL of the mail's `List-Unsubscribe: <url>` header.
fn unsubscribe_url(mail: &ReceivedMail) -> String {
    let header = mail.header("List-Unsubscribe").unwrap();
    header
        .strip_prefix('<')
        .and_then(|h| h.strip_suffix('>'))
        .unwrap_or_else(|| panic!("not one <url>: {header}"))
        .to_owned()
}
