//! SMS and webhooks through a real HTTP server.

use ecrm_testkit::HttpSink;

use super::*;

#[tokio::test]
async fn a_provider_that_never_answers_times_out_as_transient() {
    // Accepts connections and reads nothing, so every call waits for an answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let channels = Channels::from_config(&DeliveryConfig {
        http_timeout_secs: 1,
        ..sms_config(format!("http://127.0.0.1:{port}/sms"))
    })
    .unwrap();
    let message = Cleared::for_channel_tests(Channel::Sms, "+33612345678", "", "Hi", None);
    let started = std::time::Instant::now();
    assert_eq!(
        channels.deliver(&message).await,
        Outcome::Transient {
            detail: "http call timed out".to_owned()
        }
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    held.abort();
}

#[tokio::test]
async fn an_sms_is_posted_with_token_sender_and_idempotency_key() {
    let sink = HttpSink::start().await.unwrap();
    sink.respond_next(201, &[], r#"{"id":"SM-42","status":"queued"}"#, 1);
    let channels =
        Channels::from_config(&sms_config(format!("{}/v1/messages", sink.url()))).unwrap();
    let message = Cleared::for_channel_tests(
        Channel::Sms,
        "+33 6 12 34 56 78",
        "",
        "Votre code : 1234",
        None,
    );

    assert_eq!(
        channels.deliver(&message).await,
        Outcome::Delivered {
            provider_id: Some("SM-42".to_owned())
        }
    );
    let requests = sink.wait_for(1, WAIT).await;
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("authorization"), Some("Bearer sms-token-1"));
    assert_eq!(
        request.header("idempotency-key"),
        Some(message.message_id().to_string().as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        serde_json::json!({
            "from": "SHOP",
            "to": "+33612345678",
            "text": "Votre code : 1234",
            "message_id": message.message_id().to_string(),
        })
    );
}

#[tokio::test]
async fn a_webhook_is_posted_signed_so_the_receiver_can_check_it() {
    let sink = HttpSink::start().await.unwrap();
    let channels =
        Channels::from_config(&webhook_config(format!("{}/hooks/ecrm", sink.url()))).unwrap();
    let message =
        Cleared::for_channel_tests(Channel::Webhook, "subject", "", "order shipped", None);

    let Outcome::Delivered { provider_id } = channels.deliver(&message).await else {
        panic!("not delivered");
    };
    // The sink's default answer is {"id": "<uuid>"}.
    assert!(provider_id.unwrap().parse::<uuid::Uuid>().is_ok());
    let requests = sink.wait_for(1, WAIT).await;
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/hooks/ecrm")
    );
    assert_eq!(
        request.header("idempotency-key"),
        Some(message.message_id().to_string().as_str())
    );
    let body = request.json();
    assert_eq!(body["message_id"], message.message_id().to_string());
    assert_eq!(body["subject_id"], message.subject_id().to_string());
    assert_eq!(body["purpose"], "test");
    assert_eq!(body["subject"], "");
    assert_eq!(body["body"], "order shipped");
    let sent_at = body["sent_at"].as_str().unwrap();
    let sent_at = chrono::DateTime::parse_from_rfc3339(sent_at).unwrap();
    assert!((chrono::Utc::now() - sent_at.to_utc()).num_seconds().abs() < 60);

    let signature = request.header("ecrm-signature").unwrap();
    let minute = Duration::from_secs(60);
    let now = std::time::SystemTime::now();
    assert!(verify_webhook_signature(
        WEBHOOK_SECRET.as_bytes(),
        signature,
        &request.body,
        now,
        minute
    ));
    assert!(!verify_webhook_signature(
        b"whsec-another-secret-0000",
        signature,
        &request.body,
        now,
        minute
    ));
    // Replayed an hour later, the same call is refused.
    assert!(!verify_webhook_signature(
        WEBHOOK_SECRET.as_bytes(),
        signature,
        &request.body,
        now + Duration::from_secs(3600),
        minute
    ));
}

#[tokio::test]
async fn provider_refusals_become_outcomes_the_worker_acts_on() {
    let sink = HttpSink::start().await.unwrap();
    let sms = Channels::from_config(&sms_config(format!("{}/sms", sink.url()))).unwrap();
    let webhook = Channels::from_config(&webhook_config(format!("{}/hook", sink.url()))).unwrap();
    let text = Cleared::for_channel_tests(Channel::Sms, "+33612345678", "", "Hi", None);
    let call = Cleared::for_channel_tests(Channel::Webhook, "subject", "", "Hi", None);

    sink.respond_next(429, &[("retry-after", "2")], "", 1);
    assert_eq!(
        sms.deliver(&text).await,
        Outcome::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
            detail: "http 429".to_owned()
        }
    );
    sink.respond_next(503, &[], "", 1);
    assert_eq!(
        sms.deliver(&text).await,
        Outcome::Transient {
            detail: "http 503".to_owned()
        }
    );
    sink.respond_next(408, &[], "", 1);
    assert!(matches!(
        webhook.deliver(&call).await,
        Outcome::Transient { .. }
    ));
    sink.respond_next(400, &[], r#"{"error":"invalid number"}"#, 1);
    assert_eq!(
        sms.deliver(&text).await,
        Outcome::Permanent {
            detail: "http 400".to_owned(),
            suppress: true
        }
    );
    sink.respond_next(401, &[], "", 1);
    assert!(matches!(
        sms.deliver(&text).await,
        Outcome::Permanent {
            suppress: false,
            ..
        }
    ));
    sink.respond_next(400, &[], "", 1);
    assert_eq!(
        webhook.deliver(&call).await,
        Outcome::Permanent {
            detail: "http 400".to_owned(),
            suppress: false
        }
    );
    sink.respond_next(302, &[("location", "https://elsewhere.example/")], "", 1);
    assert!(matches!(
        webhook.deliver(&call).await,
        Outcome::Permanent {
            suppress: false,
            ..
        }
    ));
    assert_eq!(sink.requests().len(), 7);
}
