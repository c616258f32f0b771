//! Partner sync with the consent service answering: a subject shares with partner P exactly
//! while its consent to purpose `share:P` stands, and shares the purpose's data categories.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_testkit::TokenSpec;
use support::partners::*;
use support::*;

impl Harness {
    fn consent_token(&self) -> String {
        self.token(TokenSpec::internal(
            "consent",
            [
                ecrm_auth::Scope::ConsentRead,
                ecrm_auth::Scope::ConsentWrite,
            ]
            .into_iter()
            .collect(),
        ))
    }

    /// Defines `share:<partner>` sharing `fields`, with a notice; returns the notice version.
    async fn sharing_purpose(&self, partner: &str, fields: &[&str]) -> String {
        let mut purposes = self.consent.as_ref().unwrap().client(PurposesClient::new);
        let key = format!("share:{partner}");
        purposes
            .define_purpose(call(
                &self.consent_token(),
                consent::DefinePurposeRequest {
                    purpose: Some(consent::Purpose {
                        key: key.clone(),
                        description: format!("Sharing with {partner}"),
                        lawful_basis: common::LawfulBasis::Consent.into(),
                        channels: vec![consent::Channel::Partner.into()],
                        data_categories: fields.iter().map(|f| (*f).to_owned()).collect(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
        purposes
            .publish_notice(call(
                &self.consent_token(),
                consent::PublishNoticeRequest {
                    purpose_key: key,
                    text: format!("We share your name and email with {partner}."),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .version
    }

    async fn decide(&self, subject: &str, partner: &str, notice: &str, granted: bool) {
        let decision = if granted {
            consent::Decision::Granted
        } else {
            consent::Decision::Withdrawn
        };
        self.consent
            .as_ref()
            .unwrap()
            .client(ConsentsClient::new)
            .record_consent(call(
                &self.consent_token(),
                consent::RecordConsentRequest {
                    subject_id: subject.to_owned(),
                    purpose_key: format!("share:{partner}"),
                    decision: decision.into(),
                    channel: consent::Channel::Partner.into(),
                    collection_point: "booking".to_owned(),
                    notice_version: if granted {
                        notice.to_owned()
                    } else {
                        String::new()
                    },
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_subject_shares_what_its_consent_covers_while_it_stands() {
    let harness = Harness::start_with_consent().await;
    let amy = upsert_as(
        &harness,
        "air-one",
        partner_upsert("AF-1", "amy@example.com", "Amy"),
    )
    .await
    .unwrap();
    let bob = harness
        .upsert_email("bob@example.com", "Bob")
        .await
        .subject_id;
    let notice = harness
        .sharing_purpose("air-one", &["given_name", "email"])
        .await;

    // Defined, but nobody agreed yet.
    assert!(pull_all(&harness, "air-one").await.0.is_empty());

    harness.decide(&amy, "air-one", &notice, true).await;
    let (pulled, _) = pull_all(&harness, "air-one").await;
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].subject_id, amy);
    let attributes = pulled[0].attributes.clone().unwrap();
    assert_eq!(attributes.given_name, "Amy");
    assert_eq!(
        attributes.family_name, "",
        "not a data category of the purpose"
    );
    let values: Vec<&str> = pulled[0]
        .identifiers
        .iter()
        .map(|i| i.value.as_str())
        .collect();
    assert_eq!(values, ["AF-1", "amy@example.com"]);

    // Bob never agreed: the partner cannot reach him.
    let status = harness
        .profiles()
        .get_profile(read(
            &harness.partner("air-one"),
            ecrm_proto::ecrm::profiles::v1::GetProfileRequest {
                subject: Some(by_id(&bob)),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // A withdrawal is effective at once: the next pull shares nothing.
    harness.decide(&amy, "air-one", &notice, false).await;
    assert!(pull_all(&harness, "air-one").await.0.is_empty());
    // A partner without a sharing purpose gets nothing either.
    assert!(pull_all(&harness, "hotel-two").await.0.is_empty());
}

#[tokio::test]
async fn pulls_fail_rather_than_skip_when_consent_cannot_answer() {
    let mut harness = Harness::start_with_consent().await;
    upsert_as(
        &harness,
        "air-one",
        partner_upsert("AF-1", "cy@example.com", "Cy"),
    )
    .await
    .unwrap();
    harness.consent.take().unwrap().stop().await.unwrap();
    let status = harness
        .partner_sync()
        .pull_changes(call(
            &harness.partner("air-one"),
            ecrm_proto::ecrm::profiles::v1::PullChangesRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
}
