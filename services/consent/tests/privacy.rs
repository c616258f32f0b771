//! `PersonalData` served by consent: export, erasure that keeps what the law requires and says
//! why, and restriction that every consent check honours.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_testkit::TokenSpec;
use futures::TryStreamExt as _;
use support::*;
use tonic::Code;

impl Harness {
    fn orchestrator(&self) -> String {
        self.token(TokenSpec::internal(
            "consent",
            [Scope::PrivacyExecute].into_iter().collect(),
        ))
    }

    fn personal_data(&self) -> PersonalDataClient<tonic::transport::Channel> {
        self.server.client(PersonalDataClient::new)
    }

    async fn restrict(&self, subject: &str, on: bool) {
        self.personal_data()
            .restrict(call(
                &self.orchestrator(),
                privacy::RestrictRequest {
                    subject_id: subject.to_owned(),
                    request_id: uuid::Uuid::now_v7().to_string(),
                    restricted: on,
                },
            ))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn export_lists_decisions_and_requests_and_erasure_keeps_them_saying_why() {
    let harness = Harness::start().await;
    harness
        .define(
            "newsletter",
            common::LawfulBasis::Consent,
            &[pb::Channel::Email],
        )
        .await;
    let notice = harness.notice("newsletter", "Weekly news.").await;
    let subject = new_subject();
    harness
        .record(grant(&subject, "newsletter", &notice))
        .await
        .unwrap();
    harness
        .server
        .client(ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient::new)
        .submit_request(call(
            &harness.internal(),
            pb::SubmitRequestRequest {
                subject: Some(common::SubjectRef {
                    subject: Some(common::subject_ref::Subject::SubjectId(subject.clone())),
                }),
                r#type: pb::RequestType::Erasure.into(),
                channel: pb::RequestChannel::Web.into(),
                received_at: None,
                corrections: vec![],
            },
        ))
        .await
        .unwrap();

    let exported: Vec<privacy::ExportResponse> = harness
        .personal_data()
        .export(call(
            &harness.orchestrator(),
            privacy::ExportRequest {
                subject_id: subject.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .try_collect()
        .await
        .unwrap();
    let categories: Vec<&str> = exported.iter().map(|r| r.category.as_str()).collect();
    assert_eq!(categories, ["consent.ledger", "consent.requests"]);
    let decision: serde_json::Value = serde_json::from_str(&exported[0].document_json).unwrap();
    assert_eq!(decision["purpose"], "newsletter");
    assert_eq!(decision["evidence"]["form_id"], "checkout-v2");

    let request_id = uuid::Uuid::now_v7().to_string();
    let erase = |request_id: String, subject: String| {
        let mut client = harness.personal_data();
        let token = harness.orchestrator();
        async move {
            client
                .erase(call(
                    &token,
                    privacy::EraseRequest {
                        subject_id: subject,
                        request_id,
                    },
                ))
                .await
                .map(|r| r.into_inner().receipt.unwrap())
        }
    };
    let receipt = erase(request_id.clone(), subject.clone()).await.unwrap();
    assert!(!receipt.replayed);
    let erased: Vec<&str> = receipt.erased.iter().map(|e| e.category.as_str()).collect();
    assert_eq!(
        erased,
        [
            "consent.restriction",
            "consent.delivered_exports",
            "consent.pending_corrections"
        ]
    );
    let kept: Vec<(&str, u64, bool)> = receipt
        .retained
        .iter()
        .map(|r| (r.category.as_str(), r.count, r.pseudonymised))
        .collect();
    assert_eq!(
        kept,
        [("consent.ledger", 1, true), ("consent.requests", 1, true)]
    );
    assert!(receipt.retained[0].legal_reason.contains("Art. 7(1)"));
    let again = erase(request_id.clone(), subject.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.retained, receipt.retained);
    let reused = erase(request_id, new_subject()).await.unwrap_err();
    assert_eq!(bad_field(&reused), "request_id");
}

#[tokio::test]
async fn a_restricted_subject_is_denied_by_every_check_until_lifted() {
    let harness = Harness::start().await;
    harness
        .define(
            "newsletter",
            common::LawfulBasis::Consent,
            &[pb::Channel::Email],
        )
        .await;
    harness
        .define(
            "orders",
            common::LawfulBasis::Contract,
            &[pb::Channel::Email],
        )
        .await;
    let notice = harness.notice("newsletter", "Weekly news.").await;
    let (subject, other) = (new_subject(), new_subject());
    for s in [&subject, &other] {
        harness
            .record(grant(s, "newsletter", &notice))
            .await
            .unwrap();
    }
    let both = [subject.clone(), other.clone()];
    harness.restrict(&subject, true).await;
    for key in ["newsletter", "orders"] {
        let decisions = harness.check(key, pb::Channel::Email, &both).await.unwrap();
        assert!(!decisions[0].allowed);
        assert_eq!(decisions[0].reason(), pb::Reason::Restricted, "{key}");
        assert!(decisions[1].allowed, "{key}: another subject is unaffected");
    }
    harness.restrict(&subject, false).await;
    let decisions = harness
        .check("newsletter", pb::Channel::Email, &both)
        .await
        .unwrap();
    assert_eq!(decisions[0].reason(), pb::Reason::Granted);
}

#[tokio::test]
async fn only_the_orchestrator_reaches_personal_data() {
    let harness = Harness::start().await;
    let status = harness
        .personal_data()
        .restrict(call(
            &harness.internal(),
            privacy::RestrictRequest {
                subject_id: new_subject(),
                request_id: uuid::Uuid::now_v7().to_string(),
                restricted: true,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}
