//! Transactional messages through the running services: consent asked at the moment of
//! sending, the address fetched from profiles, delivered over real SMTP and HTTP.

mod support;

use std::time::Duration;

use ecrm_proto::ecrm::outbound::v1 as pb;
use support::sending::{NEWSLETTER, ORDER_UPDATES, Sending, WEBHOOK_SECRET};

fn order_confirmation(subject: &str, key: &str) -> pb::SendTransactionalRequest {
    pb::SendTransactionalRequest {
        subject_id: subject.to_owned(),
        channel: pb::Channel::Email.into(),
        template_key: "order_confirmation".to_owned(),
        locale: String::new(),
        variables_json: r#"{"order": "1042", "items": [{"name": "Tent <2p>"}]}"#.to_owned(),
        purpose_key: ORDER_UPDATES.to_owned(),
        idempotency_key: key.to_owned(),
    }
}

async fn with_order_template(suite: &Sending) {
    suite
        .template(
            "order_confirmation",
            pb::Channel::Email,
            "Order {{ order }} confirmed",
            "<p>Thank you for order {{ order }}:</p>{% for item in items %}<li>{{ item.name }}</li>{% endfor %}",
            &["order", "items"],
        )
        .await;
}

#[tokio::test]
async fn a_transactional_mail_goes_once_without_marketing_consent_and_without_unsubscribe_headers()
{
    let suite = Sending::start().await;
    with_order_template(&suite).await;
    let subject = suite.customer("ada@example.com", None, None, None).await;

    let first = suite
        .send(order_confirmation(&subject, "order-1042"))
        .await
        .unwrap();
    assert!(first.created);
    let message = first.message.unwrap();
    assert!(!message.marketing);
    let sent = suite
        .message_until(&message.message_id, pb::MessageStatus::Sent)
        .await;
    assert_eq!(sent.attempts, 1);
    assert_eq!(sent.rendered_locale, "en");
    assert_eq!(sent.template_version, 1);

    // The same request again is the same message, sent once.
    let again = suite
        .send(order_confirmation(&subject, "order-1042"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.message.unwrap().message_id, message.message_id);
    let mails = suite.smtp.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(suite.smtp.count(), 1);
    let mail = &mails[0];
    assert_eq!(mail.rcpt_to, ["ada@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Order 1042 confirmed")
    );
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some(format!("<{}@shop.example>", message.message_id).as_str())
    );
    // HTML-escaped, as the template's values are.
    let html = mail.html().unwrap();
    assert!(html.contains("<li>Tent &lt;2p&gt;</li>"), "{html}");
    assert_eq!(mail.header("List-Unsubscribe"), None);
    assert_eq!(mail.header("List-Unsubscribe-Post"), None);
}

#[tokio::test]
async fn transactional_messages_go_only_for_contract_purposes_and_name_bad_fields() {
    let suite = Sending::start().await;
    with_order_template(&suite).await;
    let subject = suite.customer("ada@example.com", None, None, None).await;

    let marketing = suite
        .send(pb::SendTransactionalRequest {
            purpose_key: NEWSLETTER.to_owned(),
            ..order_confirmation(&subject, "k1")
        })
        .await
        .unwrap_err();
    assert_eq!(
        marketing.code(),
        tonic::Code::FailedPrecondition,
        "{marketing:?}"
    );
    assert!(marketing.message().contains("campaigns"));

    for (request, field) in [
        (
            pb::SendTransactionalRequest {
                subject_id: "nope".to_owned(),
                ..order_confirmation(&subject, "k2")
            },
            "subject_id",
        ),
        (
            pb::SendTransactionalRequest {
                template_key: "missing".to_owned(),
                ..order_confirmation(&subject, "k3")
            },
            "template_key",
        ),
        (
            pb::SendTransactionalRequest {
                variables_json: r#"{"order": "1"}"#.to_owned(),
                ..order_confirmation(&subject, "k4")
            },
            "variables_json",
        ),
        (
            pb::SendTransactionalRequest {
                variables_json: "[1]".to_owned(),
                ..order_confirmation(&subject, "k5")
            },
            "variables_json",
        ),
        (order_confirmation(&subject, ""), "idempotency_key"),
        (
            pb::SendTransactionalRequest {
                channel: pb::Channel::Unspecified.into(),
                ..order_confirmation(&subject, "k7")
            },
            "channel",
        ),
        (
            pb::SendTransactionalRequest {
                purpose_key: "no_such_purpose".to_owned(),
                ..order_confirmation(&subject, "k6")
            },
            "purpose_key",
        ),
    ] {
        let error = suite.send(request).await.unwrap_err();
        assert_eq!(
            error.code(),
            tonic::Code::InvalidArgument,
            "{field}: {error:?}"
        );
        assert!(
            error.message().contains(field),
            "{field}: {}",
            error.message()
        );
    }
    // Nothing was queued by the refused requests.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(suite.smtp.count(), 0);
}

#[tokio::test]
async fn an_unknown_subject_and_a_profile_without_the_address_are_blocked_with_their_reason() {
    let suite = Sending::start().await;
    with_order_template(&suite).await;
    suite
        .template(
            "code",
            pb::Channel::Sms,
            "",
            "Your code: {{ code }}",
            &["code"],
        )
        .await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let message = suite
        .send(order_confirmation(&unknown, "k"))
        .await
        .unwrap()
        .message
        .unwrap();
    let blocked = suite
        .message_until(&message.message_id, pb::MessageStatus::Blocked)
        .await;
    assert_eq!(blocked.reason(), pb::MessageReason::UnknownSubject);

    let no_phone = suite.customer("ada@example.com", None, None, None).await;
    let message = suite
        .send(pb::SendTransactionalRequest {
            subject_id: no_phone,
            channel: pb::Channel::Sms.into(),
            template_key: "code".to_owned(),
            variables_json: r#"{"code": "123456"}"#.to_owned(),
            purpose_key: ORDER_UPDATES.to_owned(),
            idempotency_key: "sms-1".to_owned(),
            locale: String::new(),
        })
        .await
        .unwrap()
        .message
        .unwrap();
    let blocked = suite
        .message_until(&message.message_id, pb::MessageStatus::Blocked)
        .await;
    assert_eq!(blocked.reason(), pb::MessageReason::NoAddress);
    assert!(suite.sms.requests().is_empty());
}

#[tokio::test]
async fn sms_and_webhooks_go_over_http_the_webhook_signed() {
    let suite = Sending::start().await;
    suite
        .template(
            "code",
            pb::Channel::Sms,
            "",
            "Your code: {{ code }}",
            &["code"],
        )
        .await;
    suite
        .template(
            "shipped",
            pb::Channel::Webhook,
            "",
            "Order {{ order }} shipped",
            &["order"],
        )
        .await;
    let subject = suite
        .customer("ada@example.com", Some("+33 6 12 34 56 78"), None, None)
        .await;
    let sms = suite
        .send(pb::SendTransactionalRequest {
            subject_id: subject.clone(),
            channel: pb::Channel::Sms.into(),
            template_key: "code".to_owned(),
            variables_json: r#"{"code": "123456"}"#.to_owned(),
            purpose_key: ORDER_UPDATES.to_owned(),
            idempotency_key: "sms-1".to_owned(),
            locale: String::new(),
        })
        .await
        .unwrap()
        .message
        .unwrap();
    suite
        .message_until(&sms.message_id, pb::MessageStatus::Sent)
        .await;
    let request = &suite.sms.wait_for(1, Duration::from_secs(10)).await[0];
    let body = request.json();
    assert_eq!(body["to"], "+33612345678");
    assert_eq!(body["text"], "Your code: 123456");
    assert_eq!(request.header("authorization"), Some("Bearer sms-token"));
    assert_eq!(
        request.header("idempotency-key"),
        Some(sms.message_id.as_str())
    );

    let hook = suite
        .send(pb::SendTransactionalRequest {
            subject_id: subject.clone(),
            channel: pb::Channel::Webhook.into(),
            template_key: "shipped".to_owned(),
            variables_json: r#"{"order": "1042"}"#.to_owned(),
            purpose_key: ORDER_UPDATES.to_owned(),
            idempotency_key: "hook-1".to_owned(),
            locale: String::new(),
        })
        .await
        .unwrap()
        .message
        .unwrap();
    suite
        .message_until(&hook.message_id, pb::MessageStatus::Sent)
        .await;
    let request = &suite.webhook.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(request.json()["subject_id"], subject.as_str());
    assert_eq!(request.json()["body"], "Order 1042 shipped");
    let signature = request.header(ecrm_outbound::SIGNATURE_HEADER).unwrap();
    assert!(ecrm_outbound::verify_webhook_signature(
        WEBHOOK_SECRET.as_bytes(),
        signature,
        &request.body,
        std::time::SystemTime::now(),
        Duration::from_secs(300),
    ));
    assert!(!ecrm_outbound::verify_webhook_signature(
        b"another secret",
        signature,
        &request.body,
        std::time::SystemTime::now(),
        Duration::from_secs(300),
    ));
}
