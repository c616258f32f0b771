//! Campaigns through the running services: consent asked for each recipient when its message's
//! turn comes, the address fetched from profiles, segments read from segmentation, mail
//! delivered to a real SMTP server, unsubscribes clicked over HTTP.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DurationRound as _, TimeDelta, Utc};
use ecrm_auth::Scope;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::segmentation::v1 as segmentation;
use ecrm_proto::ecrm::segmentation::v1::segments_client::SegmentsClient;
use ecrm_testkit::ReceivedMail;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::call;
use support::campaigns::{CapLock, blocked_by_reason, mails_to, reasons};
use support::sending::{NEWSLETTER, ORDER_UPDATES, Options, Sending};
use tonic::Code;

/// The newsletter's template: its unsubscribe link is the one outbound provides.
const NEWS: &str = "weekly_news";
/// A service notice, for a purpose resting on the contract: no unsubscribe link.
const NOTICE: &str = "service_notice";

async fn with_templates(suite: &Sending) {
    suite
        .template(
            NEWS,
            pb::Channel::Email,
            "{{ headline }}",
            r#"<p>{{ headline }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>"#,
            &["headline"],
        )
        .await;
    suite
        .template(
            NOTICE,
            pb::Channel::Email,
            "{{ headline }}",
            "<p>{{ headline }}</p>",
            &["headline"],
        )
        .await;
}

/// A draft campaign by email to an explicit list.
fn campaign(name: &str, purpose: &str, template: &str) -> pb::Campaign {
    pb::Campaign {
        name: name.to_owned(),
        explicit_list: true,
        channel: pb::Channel::Email.into(),
        template_key: template.to_owned(),
        variables_json: r#"{"headline": "Spring sale"}"#.to_owned(),
        purpose_key: purpose.to_owned(),
        ..Default::default()
    }
}

fn newsletter(name: &str) -> pb::Campaign {
    campaign(name, NEWSLETTER, NEWS)
}

fn assert_invalid(error: &tonic::Status, field: &str) {
    assert_eq!(error.code(), Code::InvalidArgument, "{field}: {error:?}");
    assert!(
        error.message().contains(field),
        "{field}: {}",
        error.message()
    );
}

fn assert_failed_precondition(error: &tonic::Status) {
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
}

/// Sends the newsletter to `subject` (who subscribed) at `address`, checks that it arrived
/// once, the campaign completed with one message sent; returns the mail.
async fn newsletter_reaches(suite: &Sending, subject: &str, address: &str) -> ReceivedMail {
    let created = suite
        .create_campaign(newsletter("Spring sale"), &[subject.to_owned()])
        .await
        .unwrap();
    assert_eq!(created.state(), pb::CampaignState::Draft);
    assert!(created.marketing);
    assert_eq!(created.recipients, 1);
    let started = suite.start_campaign(&created.campaign_id).await.unwrap();
    assert_eq!(started.state(), pb::CampaignState::Running);

    let stats = suite
        .campaign_until_settled(&created.campaign_id, false)
        .await;
    assert_eq!(
        (stats.recipients, stats.sent, stats.blocked, stats.failed),
        (1, 1, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.state(), pb::CampaignState::Completed);
    assert_eq!(
        suite.get_campaign(&created.campaign_id).await.state(),
        pb::CampaignState::Completed
    );
    let message = suite.campaign_message(&created.campaign_id, subject).await;
    assert_eq!(message.status(), pb::MessageStatus::Sent);
    assert!(message.marketing);
    assert_eq!(message.purpose_key, NEWSLETTER);

    // Accepted by the SMTP server before it was marked sent.
    let mails = mails_to(suite, address);
    assert_eq!(mails.len(), 1, "{mails:?}");
    mails.into_iter().next().unwrap()
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

#[tokio::test]
async fn a_newsletter_reaches_a_subscriber_once_with_one_click_unsubscribe_headers() {
    let suite = Sending::start().await;
    with_templates(&suite).await;
    let ada = suite.customer("ada@example.com", None, None, None).await;
    suite.grant(&ada, consent::Channel::Email).await;

    let mail = newsletter_reaches(&suite, &ada, "ada@example.com").await;
    assert_eq!(suite.smtp.count(), 1);
    assert_eq!(mail.header("Subject").as_deref(), Some("Spring sale"));
    let url = unsubscribe_url(&mail);
    let prefix = format!("http://{}/u/", suite.http);
    assert!(url.starts_with(&prefix), "{url}");
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    // The body links to the same page.
    let token = &url[prefix.len()..];
    let html = mail.html().unwrap();
    assert!(html.contains(token), "{html}");
}

#[tokio::test]
async fn a_campaign_mails_only_those_who_may_be_mailed_and_counts_the_others_by_reason() {
    let suite = Sending::start().await;
    with_templates(&suite).await;
    let customer = |name: &'static str| {
        let suite = &suite;
        async move {
            let subject = suite
                .customer(&format!("{name}@example.com"), None, None, None)
                .await;
            (name, subject)
        }
    };

    // A grant lapsing in two seconds, recorded first so it has lapsed when the rest is ready.
    let (_, expired) = customer("expired").await;
    let soon = Utc::now() + TimeDelta::seconds(2);
    suite
        .decide(
            &expired,
            NEWSLETTER,
            consent::Channel::Email,
            consent::Decision::Granted,
            Some(prost_types::Timestamp {
                seconds: soon.timestamp(),
                nanos: 0,
            }),
        )
        .await;
    let (_, subscribed) = customer("subscribed").await;
    suite.grant(&subscribed, consent::Channel::Email).await;
    let (_, withdrawn) = customer("withdrawn").await;
    suite.grant(&withdrawn, consent::Channel::Email).await;
    suite
        .decide(
            &withdrawn,
            NEWSLETTER,
            consent::Channel::Email,
            consent::Decision::Withdrawn,
            None,
        )
        .await;
    let (_, never_asked) = customer("never_asked").await;
    let (_, unsubscribed) = customer("unsubscribed").await;
    suite.grant(&unsubscribed, consent::Channel::Email).await;
    suite
        .suppress(
            "unsubscribed@example.com",
            pb::SuppressionScope::Marketing,
            pb::SuppressionReason::Unsubscribed,
        )
        .await;
    let (_, complained) = customer("complained").await;
    suite.grant(&complained, consent::Channel::Email).await;
    suite
        .suppress(
            "Complained@Example.com ",
            pb::SuppressionScope::All,
            pb::SuppressionReason::Complained,
        )
        .await;
    // Restricted where profiles keeps the customer (consent still allows), and at consent.
    let (_, restricted_profile) = customer("restricted_profile").await;
    suite
        .grant(&restricted_profile, consent::Channel::Email)
        .await;
    suite.restrict_at("profiles", &restricted_profile).await;
    let (_, restricted_consent) = customer("restricted_consent").await;
    suite
        .grant(&restricted_consent, consent::Channel::Email)
        .await;
    suite.restrict_at("consent", &restricted_consent).await;
    let (_, objected) = customer("objected").await;
    suite.grant(&objected, consent::Channel::Email).await;
    suite.object(&objected).await;
    suite
        .consent_reason_until(&expired, NEWSLETTER, consent::Reason::Expired)
        .await;

    let everyone = [
        (&subscribed, None),
        (&withdrawn, Some(pb::MessageReason::Withdrawn)),
        (&never_asked, Some(pb::MessageReason::NeverAsked)),
        (&expired, Some(pb::MessageReason::Expired)),
        (&unsubscribed, Some(pb::MessageReason::Suppressed)),
        (&complained, Some(pb::MessageReason::Suppressed)),
        (&restricted_profile, Some(pb::MessageReason::Restricted)),
        (&restricted_consent, Some(pb::MessageReason::Restricted)),
        (&objected, Some(pb::MessageReason::Objected)),
    ];
    let subjects: Vec<String> = everyone.iter().map(|(s, _)| (*s).clone()).collect();
    let id = suite
        .run_campaign(newsletter("Spring sale"), &subjects)
        .await;
    let stats = suite.campaign_until_settled(&id, false).await;
    assert_eq!(stats.state(), pb::CampaignState::Completed);
    assert_eq!(
        (stats.recipients, stats.sent, stats.blocked, stats.failed),
        (9, 1, 8, 0),
        "{stats:?}"
    );
    assert_eq!(
        blocked_by_reason(&stats),
        reasons(&[
            (pb::MessageReason::Withdrawn, 1),
            (pb::MessageReason::NeverAsked, 1),
            (pb::MessageReason::Expired, 1),
            (pb::MessageReason::Suppressed, 2),
            (pb::MessageReason::Restricted, 2),
            (pb::MessageReason::Objected, 1),
        ])
    );
    for (subject, reason) in everyone {
        let message = suite.campaign_message(&id, subject).await;
        match reason {
            None => assert_eq!(message.status(), pb::MessageStatus::Sent, "{message:?}"),
            Some(reason) => {
                assert_eq!(message.status(), pb::MessageStatus::Blocked, "{message:?}");
                assert_eq!(message.reason(), reason, "{message:?}");
                assert_eq!(message.attempts, 0);
            }
        }
    }
    let mails = suite.smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].rcpt_to, ["subscribed@example.com"]);
}

#[tokio::test]
async fn a_campaign_for_the_contract_needs_no_marketing_consent_and_a_newsletter_does() {
    let suite = Sending::start().await;
    with_templates(&suite).await;
    let ada = suite.customer("ada@example.com", None, None, None).await;

    let notice = suite
        .create_campaign(
            campaign("Store closing", ORDER_UPDATES, NOTICE),
            std::slice::from_ref(&ada),
        )
        .await
        .unwrap();
    assert!(!notice.marketing);
    suite.start_campaign(&notice.campaign_id).await.unwrap();
    let stats = suite
        .campaign_until_settled(&notice.campaign_id, false)
        .await;
    assert_eq!((stats.sent, stats.blocked), (1, 0), "{stats:?}");
    assert_eq!(stats.state(), pb::CampaignState::Completed);
    let message = suite.campaign_message(&notice.campaign_id, &ada).await;
    assert!(!message.marketing);
    let mails = mails_to(&suite, "ada@example.com");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("Subject").as_deref(), Some("Spring sale"));
    assert_eq!(mails[0].header("List-Unsubscribe"), None);
    assert_eq!(mails[0].header("List-Unsubscribe-Post"), None);

    let news = suite
        .run_campaign(newsletter("Spring sale"), std::slice::from_ref(&ada))
        .await;
    let stats = suite.campaign_until_settled(&news, false).await;
    assert_eq!((stats.sent, stats.blocked), (0, 1), "{stats:?}");
    assert_eq!(
        blocked_by_reason(&stats),
        reasons(&[(pb::MessageReason::NeverAsked, 1)])
    );
    let message = suite.campaign_message(&news, &ada).await;
    assert_eq!(message.status(), pb::MessageStatus::Blocked);
    assert_eq!(message.reason(), pb::MessageReason::NeverAsked);
    assert_eq!(suite.smtp.count(), 1);
}

/// The members of `segment` at segmentation, as a set; None while it is being populated.
async fn members(suite: &Sending, segment: &str) -> Option<BTreeSet<String>> {
    let segmentation = suite.segmentation.as_ref().unwrap();
    let token = suite.token("segmentation", &[Scope::SegmentsRead]);
    let answer = segmentation
        .client(SegmentsClient::new)
        .get_members(call(
            &token,
            segmentation::GetMembersRequest {
                segment: segment.to_owned(),
                page: None,
            },
        ))
        .await;
    match answer {
        Ok(members) => Some(
            members
                .into_inner()
                .members
                .into_iter()
                .map(|m| m.subject_id)
                .collect(),
        ),
        Err(status) if status.code() == Code::FailedPrecondition => None,
        Err(status) => panic!("{status:?}"),
    }
}

#[tokio::test]
async fn a_campaign_to_a_segment_mails_its_members_who_subscribed() {
    let suite = Sending::start_with(Options {
        segmentation: true,
        ..Options::default()
    })
    .await;
    with_templates(&suite).await;
    let in_country = |email: &'static str, country: &'static str| {
        let suite = &suite;
        async move {
            suite
                .customer_with(
                    email,
                    profiles::ProfileAttributes {
                        given_name: "Ada".to_owned(),
                        country: country.to_owned(),
                        ..Default::default()
                    },
                )
                .await
        }
    };
    let ada = in_country("ada@example.com", "FR").await;
    let bea = in_country("bea@example.com", "FR").await;
    let dan = in_country("dan@example.com", "FR").await;
    let cy = in_country("cy@example.com", "DE").await;
    for subscriber in [&ada, &bea, &cy] {
        suite.grant(subscriber, consent::Channel::Email).await;
    }
    let segmentation = suite.segmentation.as_ref().unwrap();
    segmentation
        .client(SegmentsClient::new)
        .define_segment(call(
            &suite.token("segmentation", &[Scope::SegmentsRead, Scope::SegmentsWrite]),
            segmentation::DefineSegmentRequest {
                segment: Some(segmentation::Segment {
                    name: "french".to_owned(),
                    rule: r#"country == "FR""#.to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let expected: BTreeSet<String> = [ada.clone(), bea.clone(), dan.clone()].into();
    let deadline = Instant::now() + Duration::from_secs(20);
    while members(&suite, "french").await.as_ref() != Some(&expected) {
        assert!(
            Instant::now() < deadline,
            "the segment never held its three members"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let created = suite
        .create_campaign(
            pb::Campaign {
                explicit_list: false,
                segment: "french".to_owned(),
                ..newsletter("Spring sale in France")
            },
            &[],
        )
        .await
        .unwrap();
    assert_eq!(created.segment, "french");
    assert!(!created.explicit_list);
    let started = suite.start_campaign(&created.campaign_id).await.unwrap();
    assert_eq!(started.recipients, 3);
    let stats = suite
        .campaign_until_settled(&created.campaign_id, false)
        .await;
    assert_eq!(
        (stats.recipients, stats.sent, stats.blocked),
        (3, 2, 1),
        "{stats:?}"
    );
    assert_eq!(
        blocked_by_reason(&stats),
        reasons(&[(pb::MessageReason::NeverAsked, 1)])
    );
    let received: BTreeSet<String> = suite
        .smtp
        .messages()
        .into_iter()
        .flat_map(|mail| mail.rcpt_to)
        .collect();
    assert_eq!(
        received,
        ["ada@example.com".to_owned(), "bea@example.com".to_owned()].into()
    );
    assert_eq!(suite.smtp.count(), 2);
    assert!(suite.messages_of(&cy).await.is_empty());
}

#[tokio::test]
async fn a_paused_campaign_sends_nothing_until_resumed_then_the_rest_at_its_pace() {
    let suite = Sending::start().await;
    with_templates(&suite).await;
    let subscribers = suite.subscribers("reader", 10).await;
    let subjects: Vec<String> = subscribers.iter().map(|(s, _)| s.clone()).collect();

    let begun = Instant::now();
    let id = suite
        .run_campaign(
            pb::Campaign {
                per_second: 2,
                ..newsletter("Spring sale")
            },
            &subjects,
        )
        .await;
    suite.stats_until(&id, |s| s.sent >= 3).await;
    // Two a second: the third is due a second after the start.
    assert!(begun.elapsed() >= Duration::from_secs(1));
    let paused = suite.pause_campaign(&id).await.unwrap();
    assert_eq!(paused.state(), pb::CampaignState::Paused);

    // What was in the SMTP server's hands finishes; then nothing more goes.
    suite.none_sending(&id, &subjects).await;
    let at_pause = suite.stats(&id).await;
    let sent = suite.smtp.count();
    assert_eq!(at_pause.sent, sent as u64, "{at_pause:?}");
    assert!(sent < 10, "{at_pause:?}");
    assert_eq!(at_pause.queued, 10 - at_pause.sent, "{at_pause:?}");
    assert_eq!(at_pause.state(), pb::CampaignState::Paused);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(suite.smtp.count(), sent);
    assert_eq!(suite.stats(&id).await, at_pause);

    let resumed = suite.resume_campaign(&id).await.unwrap();
    assert_eq!(resumed.state(), pb::CampaignState::Running);
    let stats = suite.campaign_until_settled(&id, false).await;
    assert_eq!((stats.sent, stats.blocked, stats.cancelled), (10, 0, 0));
    assert_eq!(stats.state(), pb::CampaignState::Completed);
    for (_, address) in &subscribers {
        assert_eq!(mails_to(&suite, address).len(), 1, "{address}");
    }
    assert_eq!(suite.smtp.count(), 10);
}

#[tokio::test]
async fn a_cancelled_campaign_never_sends_its_remaining_messages() {
    let suite = Sending::start().await;
    with_templates(&suite).await;
    let subscribers = suite.subscribers("reader", 10).await;
    let subjects: Vec<String> = subscribers.iter().map(|(s, _)| s.clone()).collect();
    let id = suite
        .run_campaign(
            pb::Campaign {
                per_second: 2,
                ..newsletter("Spring sale")
            },
            &subjects,
        )
        .await;
    suite.stats_until(&id, |s| s.sent >= 2).await;
    let cancelled = suite.cancel_campaign(&id).await.unwrap();
    assert_eq!(cancelled.state(), pb::CampaignState::Cancelled);

    suite.none_sending(&id, &subjects).await;
    let stats = suite.stats(&id).await;
    assert_eq!(stats.state(), pb::CampaignState::Cancelled);
    assert!(stats.sent >= 2 && stats.cancelled >= 1, "{stats:?}");
    assert_eq!(stats.sent + stats.cancelled, 10, "{stats:?}");
    assert_eq!((stats.queued, stats.deferred), (0, 0), "{stats:?}");
    assert_eq!(suite.smtp.count() as u64, stats.sent);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(suite.smtp.count() as u64, stats.sent);
    assert_eq!(suite.stats(&id).await, stats);
    let mut cancelled = 0;
    for (subject, address) in &subscribers {
        let message = suite.campaign_message(&id, subject).await;
        match message.status() {
            pb::MessageStatus::Sent => assert_eq!(mails_to(&suite, address).len(), 1),
            pb::MessageStatus::Cancelled => {
                cancelled += 1;
                assert!(mails_to(&suite, address).is_empty(), "{address}");
            }
            other => panic!("{other:?}: {message:?}"),
        }
    }
    assert_eq!(cancelled, stats.cancelled);

    // Final.
    assert_failed_precondition(&suite.resume_campaign(&id).await.unwrap_err());
    assert_failed_precondition(&suite.start_campaign(&id).await.unwrap_err());
}

#[tokio::test]
async fn a_message_in_the_gate_when_its_campaign_is_paused_or_cancelled_is_not_sent() {
    let suite = Sending::start_with(Options {
        frequency_cap: 10,
        ..Options::default()
    })
    .await;
    with_templates(&suite).await;
    let subscribers = suite.subscribers("reader", 2).await;
    let (ada, ada_address) = &subscribers[0];
    let (bea, bea_address) = &subscribers[1];

    // Paused while Ada's message is in the gate: it waits, and goes once resumed.
    let mut lock = CapLock::take(&suite, ada);
    let paused = suite
        .run_campaign(newsletter("Spring sale"), std::slice::from_ref(ada))
        .await;
    lock.until_waited_for().await;
    suite.pause_campaign(&paused).await.unwrap();
    lock.release();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(mails_to(&suite, ada_address).is_empty());
    let message = suite.campaign_message(&paused, ada).await;
    assert_eq!(message.status(), pb::MessageStatus::Queued, "{message:?}");
    suite.resume_campaign(&paused).await.unwrap();
    let stats = suite.campaign_until_settled(&paused, false).await;
    assert_eq!(
        (stats.sent, stats.state()),
        (1, pb::CampaignState::Completed)
    );
    assert_eq!(mails_to(&suite, ada_address).len(), 1);

    // Cancelled while Bea's message is in the gate, and Cy's (who never subscribed) is
    // refused in the same round: both stay cancelled, and nothing goes.
    let cy = suite.customer("cy@example.com", None, None, None).await;
    let mut lock = CapLock::take(&suite, bea);
    let cancelled = suite
        .run_campaign(newsletter("Summer sale"), &[bea.clone(), cy.clone()])
        .await;
    lock.until_waited_for().await;
    suite.cancel_campaign(&cancelled).await.unwrap();
    lock.release();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for subject in [bea, &cy] {
        let message = suite.campaign_message(&cancelled, subject).await;
        assert_eq!(
            message.status(),
            pb::MessageStatus::Cancelled,
            "{message:?}"
        );
    }
    let stats = suite.stats(&cancelled).await;
    assert_eq!(
        (stats.sent, stats.blocked, stats.cancelled),
        (0, 0, 2),
        "{stats:?}"
    );
    assert!(mails_to(&suite, bea_address).is_empty());
    assert!(mails_to(&suite, "cy@example.com").is_empty());
}

#[tokio::test]
async fn campaigns_refuse_changes_their_state_forbids_and_name_bad_fields() {
    let suite = Sending::start().await;
    with_templates(&suite).await;
    let subscribers = suite.subscribers("reader", 2).await;
    let subjects: Vec<String> = subscribers.iter().map(|(s, _)| s.clone()).collect();

    let draft = suite
        .create_campaign(newsletter("Spring sale"), &subjects[..1])
        .await
        .unwrap();
    // Recipients are added to a draft, each once.
    let added = suite
        .add_recipients(&draft.campaign_id, &subjects)
        .await
        .unwrap();
    assert_eq!(added.recipients, 2);
    assert_failed_precondition(&suite.pause_campaign(&draft.campaign_id).await.unwrap_err());
    assert_failed_precondition(&suite.resume_campaign(&draft.campaign_id).await.unwrap_err());

    let started = suite.start_campaign(&draft.campaign_id).await.unwrap();
    assert_eq!(started.state(), pb::CampaignState::Running);
    assert_eq!(started.recipients, 2);
    assert_failed_precondition(&suite.start_campaign(&draft.campaign_id).await.unwrap_err());
    assert_failed_precondition(&suite.resume_campaign(&draft.campaign_id).await.unwrap_err());
    assert_failed_precondition(
        &suite
            .add_recipients(&draft.campaign_id, &subjects)
            .await
            .unwrap_err(),
    );
    let stats = suite
        .campaign_until_settled(&draft.campaign_id, false)
        .await;
    assert_eq!(stats.sent, 2);
    // Completed: nothing to pause, resume or cancel.
    assert_failed_precondition(&suite.pause_campaign(&draft.campaign_id).await.unwrap_err());
    assert_failed_precondition(&suite.cancel_campaign(&draft.campaign_id).await.unwrap_err());

    let mut bad_ids = subjects.clone();
    bad_ids.extend([subjects[0].clone(), "not-a-uuid".to_owned()]);
    for (campaign, subject_ids, field) in [
        (
            pb::Campaign {
                explicit_list: false,
                ..newsletter("No audience")
            },
            vec![],
            "campaign.segment",
        ),
        (
            pb::Campaign {
                segment: "french".to_owned(),
                ..newsletter("Both audiences")
            },
            vec![],
            "campaign.segment",
        ),
        (newsletter("Bad id"), bad_ids, "subject_ids[3]"),
        (
            pb::Campaign {
                per_second: 1_000_000,
                ..newsletter("Too fast")
            },
            vec![],
            "campaign.per_second",
        ),
        (
            campaign("No template", NEWSLETTER, "no_such_template"),
            vec![],
            "campaign.template_key",
        ),
        (newsletter(" "), vec![], "campaign.name"),
        (
            campaign("No purpose", "no_such_purpose", NEWS),
            vec![],
            "campaign.purpose_key",
        ),
        (
            pb::Campaign {
                variables_json: "[]".to_owned(),
                ..newsletter("No variables")
            },
            vec![],
            "campaign.variables_json",
        ),
    ] {
        let error = suite
            .create_campaign(campaign, &subject_ids)
            .await
            .unwrap_err();
        assert_invalid(&error, field);
    }
    assert_invalid(
        &suite.start_campaign("not-a-uuid").await.unwrap_err(),
        "campaign_id",
    );
    assert_eq!(
        suite
            .start_campaign(&uuid::Uuid::now_v7().to_string())
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(suite.smtp.count(), 2);
}

#[tokio::test]
async fn the_frequency_cap_blocks_the_marketing_message_over_it() {
    let suite = Sending::start_with(Options {
        frequency_cap: 2,
        ..Options::default()
    })
    .await;
    with_templates(&suite).await;
    let ada = suite.customer("ada@example.com", None, None, None).await;
    suite.grant(&ada, consent::Channel::Email).await;

    let mut statuses = Vec::new();
    for name in ["Spring sale", "Summer sale", "Autumn sale"] {
        let sale = pb::Campaign {
            variables_json: serde_json::json!({ "headline": name }).to_string(),
            ..newsletter(name)
        };
        let id = suite.run_campaign(sale, std::slice::from_ref(&ada)).await;
        suite.campaign_until_settled(&id, false).await;
        let message = suite.campaign_message(&id, &ada).await;
        statuses.push((message.status(), message.reason()));
    }
    assert_eq!(
        statuses,
        [
            (pb::MessageStatus::Sent, pb::MessageReason::Unspecified),
            (pb::MessageStatus::Sent, pb::MessageReason::Unspecified),
            (pb::MessageStatus::Blocked, pb::MessageReason::FrequencyCap),
        ]
    );
    let subjects: Vec<String> = suite
        .smtp
        .messages()
        .iter()
        .map(|mail| mail.header("Subject").unwrap())
        .collect();
    assert_eq!(subjects, ["Spring sale", "Summer sale"]);

    // Service notices do not count and are not counted.
    let id = suite
        .run_campaign(
            campaign("Store closing", ORDER_UPDATES, NOTICE),
            std::slice::from_ref(&ada),
        )
        .await;
    let stats = suite.campaign_until_settled(&id, false).await;
    assert_eq!(stats.sent, 1, "{stats:?}");
    assert_eq!(suite.smtp.count(), 3);
}

#[tokio::test]
async fn quiet_hours_defer_a_newsletter_until_they_end_in_the_recipients_zone() {
    // A window from the current hour in Tokyo to two hours later: it is quiet there now, and
    // not in Paris, seven or eight hours behind.
    let tokyo = Utc::now().with_timezone(&chrono_tz::Asia::Tokyo);
    let start = tokyo.duration_trunc(TimeDelta::hours(1)).unwrap();
    let end = start + TimeDelta::hours(2);
    let suite = Sending::start_with(Options {
        quiet_hours: format!("{}-{}", start.format("%H:%M"), end.format("%H:%M")),
        ..Options::default()
    })
    .await;
    with_templates(&suite).await;
    let in_zone = |email: &'static str, zone: &'static str| {
        let suite = &suite;
        async move {
            let subject = suite
                .customer_with(
                    email,
                    profiles::ProfileAttributes {
                        given_name: "Ada".to_owned(),
                        timezone: zone.to_owned(),
                        ..Default::default()
                    },
                )
                .await;
            suite.grant(&subject, consent::Channel::Email).await;
            subject
        }
    };
    let in_tokyo = in_zone("kenji@example.com", "Asia/Tokyo").await;
    let in_paris = in_zone("ada@example.com", "Europe/Paris").await;

    let id = suite
        .run_campaign(
            newsletter("Spring sale"),
            &[in_tokyo.clone(), in_paris.clone()],
        )
        .await;
    let stats = suite.campaign_until_settled(&id, true).await;
    assert_eq!((stats.sent, stats.deferred), (1, 1), "{stats:?}");
    assert_eq!(stats.state(), pb::CampaignState::Running);
    let deferred = suite.campaign_message(&id, &in_tokyo).await;
    assert_eq!(deferred.status(), pb::MessageStatus::Deferred);
    assert_eq!(deferred.reason(), pb::MessageReason::QuietHours);
    assert_eq!(
        deferred.next_attempt_at,
        Some(prost_types::Timestamp {
            seconds: end.timestamp(),
            nanos: 0,
        }),
        "{deferred:?}"
    );
    assert_eq!(deferred.attempts, 0);
    let mails = suite.smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].rcpt_to, ["ada@example.com"]);
}

/// What a mail client's one-click POST sends (RFC 8058).
async fn one_click(url: &str) -> StatusCode {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"List-Unsubscribe=One-Click")))
        .unwrap();
    client.request(request).await.unwrap().status()
}

#[tokio::test]
async fn one_click_on_a_newsletter_stops_the_next_one_and_is_in_the_consent_ledger() {
    let suite = Sending::start().await;
    with_templates(&suite).await;
    let ada = suite.customer("ada@example.com", None, None, None).await;
    suite.grant(&ada, consent::Channel::Email).await;
    let mail = newsletter_reaches(&suite, &ada, "ada@example.com").await;

    assert_eq!(one_click(&unsubscribe_url(&mail)).await, StatusCode::OK);

    let next = suite
        .run_campaign(newsletter("Summer sale"), std::slice::from_ref(&ada))
        .await;
    let stats = suite.campaign_until_settled(&next, false).await;
    assert_eq!((stats.sent, stats.blocked), (0, 1), "{stats:?}");
    let message = suite.campaign_message(&next, &ada).await;
    assert_eq!(message.status(), pb::MessageStatus::Blocked);
    // Unsubscribed while the ledger is being told; withdrawn once it was.
    assert!(
        matches!(
            message.reason(),
            pb::MessageReason::Unsubscribed | pb::MessageReason::Withdrawn
        ),
        "{message:?}"
    );
    assert_eq!(mails_to(&suite, "ada@example.com").len(), 1);

    let history = suite.consent_history(&ada).await;
    let withdrawal = history.last().unwrap();
    assert_eq!(withdrawal.decision(), consent::Decision::Withdrawn);
    assert_eq!(withdrawal.purpose_key, NEWSLETTER);
    assert_eq!(withdrawal.channel(), consent::Channel::Email);
    assert_eq!(withdrawal.collection_point, "one-click-unsubscribe");
}
