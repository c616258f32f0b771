//! An objection to profiling, recorded at consent as a withdrawal of the purpose `profiling`,
//! takes the customer out of every segment, score and tier through the running services; a
//! new grant brings them back.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::{Duration, Instant};

use ecrm_auth::{Scope, Scopes};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::segments_client::SegmentsClient;
use ecrm_proto::ecrm::segmentation::v1::tiers_client::TiersClient;
use ecrm_testkit::TokenSpec;
use support::*;

impl Suite {
    fn consent_token(&self) -> String {
        self.auth.token(&TokenSpec::internal(
            "consent",
            [Scope::ConsentRead, Scope::ConsentWrite]
                .into_iter()
                .collect::<Scopes>(),
        ))
    }

    fn reader(&self) -> String {
        self.token("segmentation", &[Scope::SegmentsRead, Scope::SegmentsWrite])
    }

    async fn decide(&self, subject: &str, decision: consent::Decision, notice: &str) {
        self.consent
            .as_ref()
            .unwrap()
            .client(ConsentsClient::new)
            .record_consent(call(
                &self.consent_token(),
                consent::RecordConsentRequest {
                    subject_id: subject.to_owned(),
                    purpose_key: "profiling".to_owned(),
                    decision: decision.into(),
                    channel: consent::Channel::Email.into(),
                    collection_point: "preference_centre".to_owned(),
                    notice_version: notice.to_owned(),
                    evidence: Some(consent::Evidence {
                        ip_hash: "a".repeat(64),
                        user_agent: "Mozilla/5.0".to_owned(),
                        form_id: "preferences-v1".to_owned(),
                    }),
                    expires_at: None,
                },
            ))
            .await
            .unwrap();
    }

    async fn explain(&self, subject: &str) -> pb::ExplainMembershipResponse {
        self.segmentation
            .client(SegmentsClient::new)
            .explain_membership(call(
                &self.reader(),
                pb::ExplainMembershipRequest {
                    segment: "buyers".to_owned(),
                    subject_id: subject.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// The members, or `None` while the segment is being populated.
    async fn members(&self) -> Option<Vec<String>> {
        let answer = self
            .segmentation
            .client(SegmentsClient::new)
            .get_members(call(
                &self.reader(),
                pb::GetMembersRequest {
                    segment: "buyers".to_owned(),
                    page: None,
                },
            ))
            .await;
        match answer {
            Ok(page) => Some(
                page.into_inner()
                    .members
                    .into_iter()
                    .map(|m| m.subject_id)
                    .collect(),
            ),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => None,
            Err(status) => panic!("{status}"),
        }
    }

    /// Waits until the segment's members are `expected`.
    async fn members_until(&self, expected: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let members = self.members().await;
            if members.as_deref().is_some_and(|m| m == expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "members {members:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn an_objection_to_profiling_takes_the_customer_out_of_segments_scores_and_tiers() {
    let suite = Suite::start_with_consent().await;
    let consent_server = suite.consent.as_ref().unwrap();
    let mut purposes = consent_server.client(PurposesClient::new);
    purposes
        .define_purpose(call(
            &suite.consent_token(),
            consent::DefinePurposeRequest {
                purpose: Some(consent::Purpose {
                    key: "profiling".to_owned(),
                    description: "segments, scores and loyalty tiers".to_owned(),
                    lawful_basis: common::LawfulBasis::Consent.into(),
                    channels: vec![consent::Channel::Email.into()],
                    data_categories: vec!["purchases".to_owned()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let notice = purposes
        .publish_notice(call(
            &suite.consent_token(),
            consent::PublishNoticeRequest {
                purpose_key: "profiling".to_owned(),
                text: "We group customers by what they buy.".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version;

    let ada = suite.customer("ada@example.com").await;
    let bo = suite.customer("bo@example.com").await;
    suite
        .record(vec![
            order(&ada, "A-1", 5, 4_000, "EUR"),
            order(&bo, "B-1", 6, 2_000, "EUR"),
        ])
        .await;
    for subject in [&ada, &bo] {
        suite
            .aggregates_until(subject, |a| a.is_some_and(|a| a["orders"] == 1))
            .await;
    }
    suite
        .segmentation
        .client(SegmentsClient::new)
        .define_segment(call(
            &suite.reader(),
            pb::DefineSegmentRequest {
                segment: Some(pb::Segment {
                    name: "buyers".to_owned(),
                    rule: "orders >= 1".to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let mut both = vec![ada.as_str(), bo.as_str()];
    both.sort_unstable();
    suite.members_until(&both).await;
    suite.compute_rfm(pb::ComputeRfmRequest::default()).await;
    assert!(suite.rfm_score(&ada).await.is_ok());

    // Ada objects: out of the segment, her score gone, no tier, and scored no more.
    suite.decide(&ada, consent::Decision::Withdrawn, "").await;
    suite.members_until(&[bo.as_str()]).await;
    let explained = suite.explain(&ada).await;
    assert!(explained.objected && !explained.member && !explained.restricted);
    assert!(explained.conditions.is_empty());
    assert_eq!(
        suite.rfm_score(&ada).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    suite.compute_rfm(pb::ComputeRfmRequest::default()).await;
    assert_eq!(
        suite.rfm_score(&ada).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    assert!(suite.rfm_score(&bo).await.is_ok());
    let mut tiers = suite.segmentation.client(TiersClient::new);
    tiers
        .define_tier_program(call(
            &suite.reader(),
            pb::DefineTierProgramRequest {
                program: Some(pb::TierProgram {
                    name: "club".to_owned(),
                    measure: pb::TierMeasure::Orders.into(),
                    window_days: 365,
                    retain_days: 0,
                    downgrade: pb::TierDowngrade::ToQualified.into(),
                    tiers: vec![
                        pb::Tier {
                            name: "White".to_owned(),
                            threshold: 0,
                        },
                        pb::Tier {
                            name: "Black".to_owned(),
                            threshold: 1,
                        },
                    ],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let tier = tiers
        .get_tier(call(
            &suite.reader(),
            pb::GetTierRequest {
                program: "club".to_owned(),
                subject_id: ada.clone(),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(tier.objected && tier.standing.is_none());
    let exported = suite.exported(&ada).await;
    assert!(
        exported
            .iter()
            .any(|(category, doc)| category == "segmentation.objections"
                && doc["objected_to"] == "profiling")
    );

    // Granting profiling again lifts the objection: back in the segment.
    suite
        .decide(&ada, consent::Decision::Granted, &notice)
        .await;
    suite.members_until(&both).await;
    assert!(suite.explain(&ada).await.member);
}
