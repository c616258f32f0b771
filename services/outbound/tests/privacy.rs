//! Outbound's `ecrm.privacy.v1.PersonalData` through the running services: what it holds of a
//! customer exported, restricted (the gate sends nothing) and erased, with suppressions kept.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use ecrm_auth::Scope;
use ecrm_outbound::Channel;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::call;
use support::sending::{NEWSLETTER, ORDER_UPDATES, Sending};
use tonic::transport::Channel as GrpcChannel;
use uuid::Uuid;

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Thunderbird/128.0";

fn request_id() -> String {
    Uuid::now_v7().to_string()
}

fn order_confirmation(subject: &str, key: &str) -> pb::SendTransactionalRequest {
    pb::SendTransactionalRequest {
        subject_id: subject.to_owned(),
        channel: pb::Channel::Email.into(),
        template_key: "order_confirmation".to_owned(),
        locale: String::new(),
        variables_json: r#"{"order": "1042"}"#.to_owned(),
        purpose_key: ORDER_UPDATES.to_owned(),
        idempotency_key: key.to_owned(),
    }
}

impl Sending {
    /// Outbound's `PersonalData`, and a token of the data subject request orchestrator.
    fn personal_data(&self) -> (PersonalDataClient<GrpcChannel>, String) {
        (
            self.outbound.client(PersonalDataClient::new),
            self.token("outbound", &[Scope::PrivacyExecute]),
        )
    }

    async fn with_order_template(&self) {
        self.template(
            "order_confirmation",
            pb::Channel::Email,
            "Order {{ order }} confirmed",
            "<p>Thank you for order {{ order }}</p>",
            &["order"],
        )
        .await;
    }

    /// Sends an order confirmation to `subject` and waits until it is `status`.
    async fn order_confirmed(
        &self,
        subject: &str,
        key: &str,
        status: pb::MessageStatus,
    ) -> pb::Message {
        let queued = self
            .send(order_confirmation(subject, key))
            .await
            .unwrap()
            .message
            .unwrap();
        self.message_until(&queued.message_id, status).await
    }

    /// Every record outbound exports of `subject`, as (category, document).
    async fn exported(&self, subject: &str) -> Vec<(String, serde_json::Value)> {
        let (mut client, token) = self.personal_data();
        let mut stream = client
            .export(call(
                &token,
                privacy::ExportRequest {
                    subject_id: subject.to_owned(),
                    request_id: request_id(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let mut records = Vec::new();
        while let Some(record) = stream.message().await.unwrap() {
            records.push((
                record.category,
                serde_json::from_str(&record.document_json).unwrap(),
            ));
        }
        records
    }

    async fn restrict(&self, subject: &str, restricted: bool) -> privacy::RestrictResponse {
        let (mut client, token) = self.personal_data();
        client
            .restrict(call(
                &token,
                privacy::RestrictRequest {
                    subject_id: subject.to_owned(),
                    request_id: request_id(),
                    restricted,
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    async fn erase(
        &self,
        subject: &str,
        request: &str,
    ) -> Result<privacy::ErasureReceipt, tonic::Status> {
        let (mut client, token) = self.personal_data();
        client
            .erase(call(
                &token,
                privacy::EraseRequest {
                    subject_id: subject.to_owned(),
                    request_id: request.to_owned(),
                },
            ))
            .await
            .map(|response| response.into_inner().receipt.unwrap())
    }

    /// A one-click unsubscribe of `subject` from the newsletter by email, as a mail client
    /// posts it.
    async fn unsubscribe(&self, subject: &str) {
        let url = self.service.unsubscribe_links().url(
            subject.parse().unwrap(),
            Channel::Email,
            NEWSLETTER,
        );
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::from("List-Unsubscribe=One-Click")))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// A draft campaign of order updates with `subject` on its list.
    async fn campaign_to(&self, name: &str, subject: &str) -> String {
        self.campaigns()
            .create_campaign(call(
                &self.sender(),
                pb::CreateCampaignRequest {
                    campaign: Some(pb::Campaign {
                        name: name.to_owned(),
                        explicit_list: true,
                        channel: pb::Channel::Email.into(),
                        template_key: "order_confirmation".to_owned(),
                        variables_json: r#"{"order": "all"}"#.to_owned(),
                        purpose_key: ORDER_UPDATES.to_owned(),
                        ..Default::default()
                    }),
                    subject_ids: vec![subject.to_owned()],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .campaign
            .unwrap()
            .campaign_id
    }

    /// Erases `subject` at profiles, as the request orchestrator does next to outbound.
    async fn erase_at_profiles(&self, subject: &str) {
        self.profiles
            .client(PersonalDataClient::new)
            .erase(call(
                &self.token("profiles", &[Scope::PrivacyExecute]),
                privacy::EraseRequest {
                    subject_id: subject.to_owned(),
                    request_id: request_id(),
                },
            ))
            .await
            .unwrap();
    }
}

fn categories(records: &[(String, serde_json::Value)]) -> Vec<&str> {
    records
        .iter()
        .map(|(category, _)| category.as_str())
        .collect()
}

#[tokio::test]
async fn describe_lists_what_outbound_holds_and_says_suppressions_name_no_one() {
    let suite = Sending::start().await;
    let (mut client, token) = suite.personal_data();
    let described = client
        .describe(call(&token, privacy::DescribeRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.service, "outbound");
    let keys: Vec<&str> = described
        .categories
        .iter()
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "outbound.messages",
            "outbound.campaign_recipients",
            "outbound.unsubscribes",
            "outbound.restrictions",
            "outbound.suppressions",
        ]
    );
    let messages = &described.categories[0];
    assert!(
        messages.description.contains("the purpose's"),
        "{}",
        messages.description
    );
    let suppressions = &described.categories[4];
    assert!(
        suppressions.description.contains("linked to no customer"),
        "{}",
        suppressions.description
    );
}

#[tokio::test]
async fn export_returns_the_subjects_messages_campaigns_and_unsubscribes() {
    let suite = Sending::start().await;
    suite.with_order_template().await;
    let ada = suite.customer("ada@example.com", None, None, None).await;
    let bo = suite.customer("bo@example.com", None, None, None).await;
    let sent = suite
        .order_confirmed(&ada, "order-1042", pb::MessageStatus::Sent)
        .await;
    let campaign = suite.campaign_to("Autumn orders", &ada).await;
    suite.unsubscribe(&ada).await;

    let records = suite.exported(&ada).await;
    assert_eq!(
        categories(&records),
        [
            "outbound.messages",
            "outbound.campaign_recipients",
            "outbound.unsubscribes"
        ]
    );
    let message = &records[0].1;
    assert_eq!(message["message_id"], sent.message_id.as_str());
    assert_eq!(message["status"], "sent");
    assert_eq!(message["reason"], serde_json::Value::Null);
    assert_eq!(message["channel"], "email");
    assert_eq!(message["purpose"], ORDER_UPDATES);
    assert_eq!(message["template_key"], "order_confirmation");
    assert_eq!(message["rendered_locale"], "en");
    assert_eq!(message["template_version"], 1);
    // Dropped once the message was sent.
    assert_eq!(message["variables"], serde_json::json!({}));
    assert!(message["created_at"].is_string());
    assert!(message["sent_at"].is_string());
    let recipient = &records[1].1;
    assert_eq!(recipient["campaign_id"], campaign.as_str());
    assert_eq!(recipient["name"], "Autumn orders");
    let unsubscribe = &records[2].1;
    assert_eq!(unsubscribe["purpose"], NEWSLETTER);
    assert_eq!(unsubscribe["channel"], "email");
    assert_eq!(unsubscribe["user_agent"], USER_AGENT);
    assert_eq!(unsubscribe["ip_hash"].as_str().unwrap().len(), 64);

    // Nothing of Ada in Bo's export; nothing at all of a stranger.
    assert!(suite.exported(&bo).await.is_empty());
    assert!(suite.exported(&Uuid::now_v7().to_string()).await.is_empty());
}

#[tokio::test]
async fn a_restricted_subject_gets_nothing_until_the_restriction_is_lifted() {
    let suite = Sending::start().await;
    suite.with_order_template().await;
    let ada = suite.customer("ada@example.com", None, None, None).await;

    let restricted = suite.restrict(&ada, true).await;
    assert!(restricted.restricted);
    let since = restricted.effective_at.unwrap();
    // Restricting again changes nothing: restricted since the first time.
    assert_eq!(suite.restrict(&ada, true).await.effective_at, Some(since));
    let blocked = suite
        .order_confirmed(&ada, "order-1", pb::MessageStatus::Blocked)
        .await;
    assert_eq!(blocked.reason(), pb::MessageReason::Restricted);
    assert_eq!(blocked.detail, "outbound: processing is restricted");
    assert_eq!(suite.smtp.count(), 0);
    // Export still works while restricted, and says so.
    let records = suite.exported(&ada).await;
    assert_eq!(
        categories(&records),
        ["outbound.messages", "outbound.restrictions"]
    );
    assert_eq!(records[0].1["status"], "blocked");
    assert_eq!(records[0].1["reason"], "restricted");
    assert_eq!(records[1].1["restricted"], true);

    let lifted = suite.restrict(&ada, false).await;
    assert!(!lifted.restricted);
    suite
        .order_confirmed(&ada, "order-2", pb::MessageStatus::Sent)
        .await;
    assert_eq!(suite.smtp.count(), 1);
    assert_eq!(
        categories(&suite.exported(&ada).await),
        ["outbound.messages", "outbound.messages"]
    );
}

#[tokio::test]
async fn erasure_deletes_the_subjects_data_keeps_suppressions_and_replays_its_receipt() {
    let suite = Sending::start().await;
    suite.with_order_template().await;
    let ada = suite.customer("ada@example.com", None, None, None).await;
    let bo = suite.customer("bo@example.com", None, None, None).await;
    suite
        .order_confirmed(&ada, "order-1", pb::MessageStatus::Sent)
        .await;
    suite
        .order_confirmed(&ada, "order-2", pb::MessageStatus::Sent)
        .await;
    suite
        .order_confirmed(&bo, "order-3", pb::MessageStatus::Sent)
        .await;
    suite.campaign_to("Autumn orders", &ada).await;
    suite.unsubscribe(&ada).await;
    suite.restrict(&ada, true).await;
    // Ada objected: her address is never written to again.
    suite
        .suppress(
            "ada@example.com",
            pb::SuppressionScope::All,
            pb::SuppressionReason::Objected,
        )
        .await;

    let request = request_id();
    let receipt = suite.erase(&ada, &request).await.unwrap();
    assert!(!receipt.replayed);
    assert_eq!(receipt.service, "outbound");
    assert_eq!(receipt.subject_id, ada);
    assert_eq!(receipt.request_id, request);
    let counts: Vec<(&str, u64)> = receipt
        .erased
        .iter()
        .map(|e| (e.category.as_str(), e.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("outbound.messages", 2),
            ("outbound.campaign_recipients", 1),
            ("outbound.unsubscribes", 1),
            ("outbound.restrictions", 1),
        ]
    );
    assert_eq!(receipt.retained.len(), 1);
    let kept = &receipt.retained[0];
    assert_eq!(kept.category, "outbound.suppressions");
    assert!(kept.pseudonymised);
    assert!(kept.legal_reason.contains("21(3)"), "{}", kept.legal_reason);
    assert!(suite.exported(&ada).await.is_empty());
    // Bo's data is untouched.
    assert_eq!(
        categories(&suite.exported(&bo).await),
        ["outbound.messages"]
    );

    // The same request again: the first receipt, nothing erased anew.
    let again = suite.erase(&ada, &request).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.erased, receipt.erased);
    assert_eq!(again.retained, receipt.retained);
    assert_eq!(again.completed_at, receipt.completed_at);
    // The request id cannot erase someone else.
    let other = suite.erase(&bo, &request).await.unwrap_err();
    assert_eq!(other.code(), tonic::Code::InvalidArgument);
    assert!(
        other.message().contains("request_id"),
        "{}",
        other.message()
    );
    assert_eq!(
        categories(&suite.exported(&bo).await),
        ["outbound.messages"]
    );

    // Erased at profiles too, Ada comes back as a new customer with the same address: the
    // suppression still stands.
    suite.erase_at_profiles(&ada).await;
    let new_ada = suite.customer("ada@example.com", None, None, None).await;
    assert_ne!(new_ada, ada);
    let blocked = suite
        .order_confirmed(&new_ada, "order-4", pb::MessageStatus::Blocked)
        .await;
    assert_eq!(blocked.reason(), pb::MessageReason::Suppressed);
    // Three mails in all: Ada's two and Bo's one before the erasure.
    assert_eq!(suite.smtp.count(), 3);
}

#[tokio::test]
async fn bad_ids_are_invalid_arguments_naming_the_field_and_privacy_execute_is_needed() {
    let suite = Sending::start().await;
    let (mut client, token) = suite.personal_data();
    let subject = Uuid::now_v7().to_string();
    for (subject_id, request_id, field) in [
        ("not a subject", request_id(), "subject_id"),
        (subject.as_str(), "not a request".to_owned(), "request_id"),
    ] {
        let statuses = [
            client
                .export(call(
                    &token,
                    privacy::ExportRequest {
                        subject_id: subject_id.to_owned(),
                        request_id: request_id.clone(),
                    },
                ))
                .await
                .map(drop),
            client
                .erase(call(
                    &token,
                    privacy::EraseRequest {
                        subject_id: subject_id.to_owned(),
                        request_id: request_id.clone(),
                    },
                ))
                .await
                .map(drop),
            client
                .restrict(call(
                    &token,
                    privacy::RestrictRequest {
                        subject_id: subject_id.to_owned(),
                        request_id: request_id.clone(),
                        restricted: true,
                    },
                ))
                .await
                .map(drop),
            client
                .rectify(call(
                    &token,
                    privacy::RectifyRequest {
                        subject_id: subject_id.to_owned(),
                        request_id: request_id.clone(),
                        corrections: Vec::new(),
                    },
                ))
                .await
                .map(drop),
        ];
        for (rpc, status) in ["Export", "Erase", "Restrict", "Rectify"]
            .iter()
            .zip(statuses)
        {
            let error = status.unwrap_err();
            assert_eq!(error.code(), tonic::Code::InvalidArgument, "{rpc} {field}");
            assert!(
                error.message().contains(field),
                "{rpc} {field}: {}",
                error.message()
            );
        }
    }

    // Outbound holds no field a subject could correct.
    let rectified = client
        .rectify(call(
            &token,
            privacy::RectifyRequest {
                subject_id: subject.clone(),
                request_id: request_id(),
                corrections: vec![privacy::Correction {
                    field: "family_name".to_owned(),
                    value_json: r#""Lovelace""#.to_owned(),
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(rectified.applied.is_empty());
    assert_eq!(rectified.not_held, ["family_name"]);

    // Without privacy.execute, nothing: not even for those who send and manage.
    let other = suite.sender();
    let denied = [
        client
            .describe(call(&other, privacy::DescribeRequest {}))
            .await
            .map(drop),
        client
            .export(call(
                &other,
                privacy::ExportRequest {
                    subject_id: subject.clone(),
                    request_id: request_id(),
                },
            ))
            .await
            .map(drop),
        client
            .erase(call(
                &other,
                privacy::EraseRequest {
                    subject_id: subject.clone(),
                    request_id: request_id(),
                },
            ))
            .await
            .map(drop),
        client
            .restrict(call(
                &other,
                privacy::RestrictRequest {
                    subject_id: subject.clone(),
                    request_id: request_id(),
                    restricted: true,
                },
            ))
            .await
            .map(drop),
    ];
    for status in denied {
        assert_eq!(status.unwrap_err().code(), tonic::Code::PermissionDenied);
    }
}
