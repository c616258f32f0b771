//! Delivery under stress, through the running services and real SMTP and HTTP receivers:
//! processes side by side on one queue, a process dying mid-campaign, providers asking to slow
//! down, refusing for good or failing for a while, and channels a process has no provider for.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ecrm_platform::time::from_timestamp;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::suppressions_client::SuppressionsClient;
use ecrm_testkit::DropAt;
use futures::StreamExt;
use support::call;
use support::sending::{ORDER_UPDATES, Options, Sending};
use tokio_util::sync::CancellationToken;

const ORDER_NEWS: &str = "order_news";

/// `n` customers `{prefix}{i}@example.com`; their subject ids, in order.
async fn customers(suite: &Sending, prefix: &str, n: usize) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            suite
                .customer(&format!("{prefix}{i}@example.com"), None, None, None)
                .await
        })
        .buffered(8)
        .collect()
        .await
}

/// Creates and starts a campaign of `order_news` mails (a contract purpose: no quiet hours,
/// no cap) to `subjects`, at most `per_second`; returns its id.
async fn order_news_campaign(suite: &Sending, subjects: &[String], per_second: u32) -> String {
    suite
        .template(
            ORDER_NEWS,
            pb::Channel::Email,
            "Your orders",
            "<p>Orders placed today ship tomorrow.</p>",
            &[],
        )
        .await;
    let id = suite
        .campaigns()
        .create_campaign(call(
            &suite.sender(),
            pb::CreateCampaignRequest {
                campaign: Some(pb::Campaign {
                    name: "Shipping news".to_owned(),
                    channel: pb::Channel::Email.into(),
                    template_key: ORDER_NEWS.to_owned(),
                    variables_json: "{}".to_owned(),
                    purpose_key: ORDER_UPDATES.to_owned(),
                    explicit_list: true,
                    per_second,
                    ..Default::default()
                }),
                subject_ids: subjects.to_vec(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap()
        .campaign_id;
    let started = suite
        .campaigns()
        .start_campaign(call(
            &suite.sender(),
            pb::StartCampaignRequest {
                campaign_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(started.recipients, subjects.len() as u64);
    id
}

/// How many mails the sink accepted for each recipient.
fn mails_per_recipient(suite: &Sending) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for mail in suite.smtp.messages() {
        for rcpt in mail.rcpt_to {
            *counts.entry(rcpt).or_default() += 1;
        }
    }
    counts
}

/// Asserts that each of `n` customers `{prefix}{i}@example.com` got exactly one mail, and
/// nobody else any.
fn assert_one_mail_each(suite: &Sending, prefix: &str, n: usize) {
    let counts = mails_per_recipient(suite);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let expected: Vec<String> = (0..n).map(|i| format!("{prefix}{i}@example.com")).collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|rcpt| !counts.contains_key(*rcpt))
        .collect();
    assert!(missing.is_empty(), "never sent: {missing:?}");
    assert_eq!(counts.len(), n, "{counts:?}");
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "waited in vain: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until sends are held at RCPT TO: some recipients given and not followed by a mail,
/// and no mail coming in for half a second.
async fn held_sends(suite: &Sending) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = suite.smtp.count();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let count = suite.smtp.count();
        if count == last && suite.smtp.rcpt_seen().len() > count {
            return;
        }
        assert!(Instant::now() < deadline, "no send was held");
        last = count;
    }
}

fn time(timestamp: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    from_timestamp(timestamp.unwrap()).unwrap()
}

fn transactional(
    subject: &str,
    channel: pb::Channel,
    template: &str,
    key: &str,
) -> pb::SendTransactionalRequest {
    pb::SendTransactionalRequest {
        subject_id: subject.to_owned(),
        channel: channel.into(),
        template_key: template.to_owned(),
        locale: String::new(),
        variables_json: r#"{"order": "1042"}"#.to_owned(),
        purpose_key: ORDER_UPDATES.to_owned(),
        idempotency_key: key.to_owned(),
    }
}

/// Templates `shipped` on every channel, with the variable `order`.
async fn shipped_templates(suite: &Sending) {
    for channel in [pb::Channel::Email, pb::Channel::Sms, pb::Channel::Webhook] {
        suite
            .template(
                "shipped",
                channel,
                if channel == pb::Channel::Email {
                    "Order {{ order }} shipped"
                } else {
                    ""
                },
                "Order {{ order }} is on its way",
                &["order"],
            )
            .await;
    }
}

async fn queue(suite: &Sending, request: pb::SendTransactionalRequest) -> pb::Message {
    suite.send(request).await.unwrap().message.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_campaign_send_each_message_exactly_once() {
    let suite = Sending::start_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let subjects = customers(&suite, "buyer", 200).await;

    // Two processes of two workers each, told apart by their sender.
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    for sender in ["a@shop.example", "b@shop.example"] {
        let mut config = suite.config.clone();
        config.workers = 2;
        config.delivery.email_from = Some(format!("Shop <{sender}>"));
        suite.another_process(&stop, &config).await.start();
    }
    // Paced, so that the messages come due a few at a time and the four workers race for them
    // for two seconds rather than one of them claiming the whole campaign at once.
    let campaign = order_news_campaign(&suite, &subjects, 100).await;

    let stats = suite.campaign_until_settled(&campaign, false).await;
    assert_eq!(
        (stats.sent, stats.failed, stats.blocked),
        (200, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.state(), pb::CampaignState::Completed);
    // Nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_one_mail_each(&suite, "buyer", 200);
    let mails = suite.smtp.messages();
    let ids: std::collections::BTreeSet<_> = mails.iter().map(|m| m.header("Message-ID")).collect();
    assert_eq!(ids.len(), 200);
    let by_a = mails
        .iter()
        .filter(|m| m.mail_from == "a@shop.example")
        .count();
    assert!(
        by_a > 0 && by_a < 200,
        "both processes should have sent part of the campaign: a sent {by_a}"
    );
}

/// A process dying is modelled by its own Tokio runtime dropped at once with
/// `shutdown_background`: its tasks are dropped where they stand (no clean stop, so no claim is
/// given back), its sockets to the SMTP sink and PostgreSQL close as the kernel would close a
/// dead process's. Unlike a real crash, a database call already running on one of its blocking
/// threads still finishes (and commits); with its sends held at RCPT there is none that
/// matters here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_dying_mid_campaign_loses_no_message_and_doubles_none() {
    let suite = Arc::new(
        Sending::start_with(Options {
            workers: 0,
            claim_secs: 2,
            ..Options::default()
        })
        .await,
    );
    let subjects = customers(&suite, "buyer", 200).await;
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = {
        let suite = suite.clone();
        doomed.spawn(async move {
            // Never cancelled: the process does not stop, it dies.
            let never = CancellationToken::new();
            suite.another_process(&never, &suite.config).await.start();
        })
    };
    started.await.unwrap();
    let campaign = order_news_campaign(&suite, &subjects, 50).await;

    until("part of the campaign is sent", || suite.smtp.count() >= 30).await;
    // Its next sends hang at RCPT TO, with their messages claimed.
    suite.smtp.hold(true);
    held_sends(&suite).await;
    let before = suite.smtp.count();
    doomed.shutdown_background();
    tokio::time::sleep(Duration::from_millis(300)).await;
    suite.smtp.clear_rules();

    // The dead process left its claims: messages in a channel's hands that nobody finishes.
    let left = suite.sql_count(
        "SELECT count(*) AS count FROM outbound.messages \
         WHERE claimed_by IS NOT NULL AND status = 'sending'",
    );
    assert!(left > 0, "the dying process left no claim behind");
    assert!(
        before < 200,
        "the campaign was over before the process died"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(suite.smtp.count(), before, "a dead process sent a mail");

    // A fresh process takes them once their claims lapse, and the rest.
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    suite.another_process(&stop, &suite.config).await.start();
    let stats = suite.campaign_until_settled(&campaign, false).await;
    assert_eq!((stats.sent, stats.failed), (200, 0), "{stats:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_one_mail_each(&suite, "buyer", 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_outlasting_its_claim_is_not_taken_over_by_another_process() {
    let suite = Sending::start_with(Options {
        workers: 0,
        claim_secs: 2,
        ..Options::default()
    })
    .await;
    shipped_templates(&suite).await;
    let subject = suite.customer("ada@example.com", None, None, None).await;
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    suite.another_process(&stop, &suite.config).await.start();

    // The relay hangs at RCPT TO for longer than the claim lasts.
    suite.smtp.hold(true);
    let message = queue(
        &suite,
        transactional(&subject, pb::Channel::Email, "shipped", "shipped-1042"),
    )
    .await;
    until("the send is held", || suite.smtp.rcpt_seen().len() == 1).await;
    suite.another_process(&stop, &suite.config).await.start();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(
        suite.smtp.rcpt_seen().len(),
        1,
        "another process took the message while its send was under way"
    );
    suite.smtp.hold(false);

    let sent = suite
        .message_until(&message.message_id, pb::MessageStatus::Sent)
        .await;
    assert_eq!(sent.attempts, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(suite.smtp.count(), 1);
}

#[tokio::test]
async fn a_429_pauses_the_sms_channel_without_using_an_attempt() {
    let suite = Sending::start().await;
    shipped_templates(&suite).await;
    let subject = suite
        .customer("ada@example.com", Some("+33 6 12 34 56 78"), None, None)
        .await;
    suite.sms.respond_next(429, &[("Retry-After", "2")], "", 1);

    let first = queue(
        &suite,
        transactional(&subject, pb::Channel::Sms, "shipped", "sms-1"),
    )
    .await;
    let deferred = suite
        .message_until(&first.message_id, pb::MessageStatus::Deferred)
        .await;
    assert_eq!(deferred.reason(), pb::MessageReason::RateLimited);
    assert_eq!(deferred.detail, "http 429");
    assert_eq!(deferred.attempts, 0);
    let pause_ends = time(deferred.next_attempt_at.as_ref());

    // Queued while the channel is paused: it waits for the pause too.
    let second = queue(
        &suite,
        transactional(&subject, pb::Channel::Sms, "shipped", "sms-2"),
    )
    .await;
    assert!(Utc::now() < pause_ends, "the pause ended before the test");
    let first = suite
        .message_until(&first.message_id, pb::MessageStatus::Sent)
        .await;
    let second = suite
        .message_until(&second.message_id, pb::MessageStatus::Sent)
        .await;
    assert_eq!((first.attempts, second.attempts), (1, 1));
    assert_eq!(second.reason(), pb::MessageReason::Unspecified);
    assert!(time(first.sent_at.as_ref()) >= pause_ends);
    assert!(
        time(second.sent_at.as_ref()) >= pause_ends,
        "the second SMS went during the pause"
    );
    // The refused call, then one each: the second never reached the provider during the pause.
    let requests = suite.sms.wait_for(3, Duration::from_secs(5)).await;
    let keys: Vec<_> = requests
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys[0], first.message_id);
    assert!(keys[1..].contains(&first.message_id.as_str()));
    assert!(keys[1..].contains(&second.message_id.as_str()));
}

#[tokio::test]
async fn an_smtp_451_defers_the_mail_without_using_an_attempt() {
    let suite = Sending::start().await;
    shipped_templates(&suite).await;
    let subject = suite.customer("ada@example.com", None, None, None).await;
    suite
        .smtp
        .reject("ada@example.com", 451, "4.7.1 try later", Some(1));

    let message = queue(
        &suite,
        transactional(&subject, pb::Channel::Email, "shipped", "shipped-1042"),
    )
    .await;
    let deferred = suite
        .message_until(&message.message_id, pb::MessageStatus::Deferred)
        .await;
    assert_eq!(deferred.reason(), pb::MessageReason::RateLimited);
    assert_eq!(deferred.detail, "smtp 451 4.7.1");
    assert_eq!(deferred.attempts, 0);
    let sent = suite
        .message_until(&message.message_id, pb::MessageStatus::Sent)
        .await;
    assert_eq!(sent.attempts, 1);
    assert!(time(sent.sent_at.as_ref()) >= time(deferred.next_attempt_at.as_ref()));
    assert_eq!(suite.smtp.rcpt_seen().len(), 2);
    let mails = suite.smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_to, ["ada@example.com"]);
}

#[tokio::test]
async fn an_smtp_connection_lost_mid_session_is_retried_without_a_second_copy() {
    let suite = Sending::start().await;
    shipped_templates(&suite).await;

    // Lost before the server had the message: tried again, and it arrives once.
    for (n, at) in [(0, DropAt::Rcpt), (1, DropAt::Data)] {
        let address = format!("lost{n}@example.com");
        let subject = suite.customer(&address, None, None, None).await;
        suite.smtp.drop_connection(&address, at, Some(1));
        let message = queue(
            &suite,
            transactional(
                &subject,
                pb::Channel::Email,
                "shipped",
                &format!("shipped-{n}"),
            ),
        )
        .await;
        let sent = suite
            .message_until(&message.message_id, pb::MessageStatus::Sent)
            .await;
        assert_eq!(sent.attempts, 2, "{at:?}: {sent:?}");
        let mails: Vec<_> = suite
            .smtp
            .messages()
            .into_iter()
            .filter(|mail| mail.rcpt_to == [address.clone()])
            .collect();
        assert_eq!(mails.len(), 1, "{at:?}: {mails:?}");
    }

    // Lost after the server kept it, before it said so: SMTP gives the sender no way to
    // know, so it is sent again (at least once), as the same message: the same Message-ID,
    // by which the receiving side drops the copy.
    let address = "kept@example.com";
    let subject = suite.customer(address, None, None, None).await;
    suite
        .smtp
        .drop_connection(address, DropAt::AfterData, Some(1));
    let message = queue(
        &suite,
        transactional(&subject, pb::Channel::Email, "shipped", "shipped-2"),
    )
    .await;
    let sent = suite
        .message_until(&message.message_id, pb::MessageStatus::Sent)
        .await;
    assert_eq!(sent.attempts, 2, "{sent:?}");
    let copies: Vec<String> = suite
        .smtp
        .messages()
        .into_iter()
        .filter(|mail| mail.rcpt_to == [address])
        .map(|mail| mail.header("Message-ID").unwrap())
        .collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!(copies[0], copies[1]);
}

#[tokio::test]
async fn a_hard_bounce_fails_the_mail_and_suppresses_the_address_for_every_message() {
    let suite = Sending::start().await;
    shipped_templates(&suite).await;
    let subject = suite.customer("gone@example.com", None, None, None).await;
    suite
        .smtp
        .reject("gone@example.com", 550, "5.1.1 no such user", None);

    let message = queue(
        &suite,
        transactional(&subject, pb::Channel::Email, "shipped", "shipped-1042"),
    )
    .await;
    let failed = suite
        .message_until(&message.message_id, pb::MessageStatus::Failed)
        .await;
    assert_eq!(failed.reason(), pb::MessageReason::PermanentFailure);
    assert_eq!(failed.detail, "smtp 550 5.1.1");
    assert_eq!(failed.attempts, 1);

    let suppressions = suite
        .outbound
        .client(SuppressionsClient::new)
        .list_suppressions(call(
            &suite.sender(),
            pb::ListSuppressionsRequest {
                channel: pb::Channel::Email.into(),
                address: " Gone@Example.com".to_owned(),
                page: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .suppressions;
    assert_eq!(suppressions.len(), 1, "{suppressions:?}");
    let suppression = &suppressions[0];
    assert_eq!(suppression.scope(), pb::SuppressionScope::All);
    assert_eq!(suppression.reason(), pb::SuppressionReason::Bounced);
    assert_eq!(suppression.note, "smtp 550 5.1.1");

    // Even a transactional message no longer goes to the address.
    let later = queue(
        &suite,
        transactional(&subject, pb::Channel::Email, "shipped", "shipped-1043"),
    )
    .await;
    let blocked = suite
        .message_until(&later.message_id, pb::MessageStatus::Blocked)
        .await;
    assert_eq!(blocked.reason(), pb::MessageReason::Suppressed);
    assert_eq!(blocked.attempts, 0);
    assert_eq!(suite.smtp.rcpt_seen(), ["gone@example.com"]);
    assert_eq!(suite.smtp.count(), 0);
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_until_the_provider_takes_the_message() {
    let suite = Sending::start().await;
    shipped_templates(&suite).await;
    let subject = suite.customer("ada@example.com", None, None, None).await;
    suite.webhook.respond_next(503, &[], "", 2);

    let message = queue(
        &suite,
        transactional(&subject, pb::Channel::Webhook, "shipped", "hook-1042"),
    )
    .await;
    let deferred = suite
        .message_until(&message.message_id, pb::MessageStatus::Deferred)
        .await;
    assert_eq!(deferred.reason(), pb::MessageReason::TransientFailure);
    assert_eq!(deferred.detail, "http 503");
    assert!(deferred.attempts >= 1);
    let sent = suite
        .message_until(&message.message_id, pb::MessageStatus::Sent)
        .await;
    assert_eq!(sent.attempts, 3);
    assert_eq!(sent.reason(), pb::MessageReason::Unspecified);
    // The first retry waits half to all of the base delay (1 s here), the second twice that.
    let elapsed = time(sent.sent_at.as_ref()) - time(sent.created_at.as_ref());
    assert!(
        elapsed >= chrono::Duration::milliseconds(1_500),
        "retried too soon: {elapsed}"
    );
    let requests = suite.webhook.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.header("idempotency-key") == Some(message.message_id.as_str()))
    );
}

#[tokio::test]
async fn a_message_failing_every_attempt_fails_attempts_exhausted() {
    let suite = Sending::start_with(Options {
        max_attempts: 2,
        ..Options::default()
    })
    .await;
    shipped_templates(&suite).await;
    let subject = suite.customer("ada@example.com", None, None, None).await;
    suite.webhook.respond_next(503, &[], "", 1_000);

    let message = queue(
        &suite,
        transactional(&subject, pb::Channel::Webhook, "shipped", "hook-1042"),
    )
    .await;
    let failed = suite
        .message_until(&message.message_id, pb::MessageStatus::Failed)
        .await;
    assert_eq!(failed.reason(), pb::MessageReason::AttemptsExhausted);
    assert_eq!(failed.detail, "http 503");
    assert_eq!(failed.attempts, 2);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(suite.webhook.requests().len(), 2);
}

#[tokio::test]
async fn a_channel_without_a_provider_is_refused_when_asked_for() {
    let suite = Sending::start_with(Options {
        sms: false,
        ..Options::default()
    })
    .await;
    shipped_templates(&suite).await;
    let subject = suite
        .customer("ada@example.com", Some("+33 6 12 34 56 78"), None, None)
        .await;

    let refused = suite
        .send(transactional(
            &subject,
            pb::Channel::Sms,
            "shipped",
            "sms-1",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(refused.message().contains("sms"), "{}", refused.message());
    let refused = suite
        .campaigns()
        .create_campaign(call(
            &suite.sender(),
            pb::CreateCampaignRequest {
                campaign: Some(pb::Campaign {
                    name: "Shipping news by SMS".to_owned(),
                    channel: pb::Channel::Sms.into(),
                    template_key: "shipped".to_owned(),
                    variables_json: r#"{"order": "1042"}"#.to_owned(),
                    purpose_key: ORDER_UPDATES.to_owned(),
                    explicit_list: true,
                    ..Default::default()
                }),
                subject_ids: vec![subject.clone()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );

    // The configured channels still work.
    let mail = queue(
        &suite,
        transactional(&subject, pb::Channel::Email, "shipped", "shipped-1042"),
    )
    .await;
    suite
        .message_until(&mail.message_id, pb::MessageStatus::Sent)
        .await;
}

#[tokio::test]
async fn a_message_reaching_a_process_without_its_channel_fails_channel_not_configured() {
    let suite = Sending::start_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    shipped_templates(&suite).await;
    let subject = suite
        .customer("ada@example.com", Some("+33 6 12 34 56 78"), None, None)
        .await;
    let message = queue(
        &suite,
        transactional(&subject, pb::Channel::Sms, "shipped", "sms-1"),
    )
    .await;

    let mut config = suite.config.clone();
    config.delivery.sms_url = None;
    config.delivery.sms_token = None;
    config.delivery.sms_sender = None;
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    suite.another_process(&stop, &config).await.start();
    let failed = suite
        .message_until(&message.message_id, pb::MessageStatus::Failed)
        .await;
    assert_eq!(failed.reason(), pb::MessageReason::ChannelNotConfigured);
    assert_eq!(failed.attempts, 0);
    assert!(suite.sms.requests().is_empty());
}
