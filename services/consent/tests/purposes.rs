//! Purposes and notices through the running service.

mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_testkit::{TokenSpec, assert_migrations_revert};
use support::*;
use tonic::Code;

#[tokio::test]
async fn a_purpose_is_defined_once_and_listed() {
    let harness = Harness::start().await;
    let first = harness
        .define(
            "marketing_email",
            common::LawfulBasis::Consent,
            &[pb::Channel::Email],
        )
        .await;
    assert_eq!(first.key, "marketing_email");
    // The same definition again changes nothing.
    let again = harness
        .purposes()
        .define_purpose(call(
            &harness.internal(),
            pb::DefinePurposeRequest {
                purpose: Some(purpose(
                    "marketing_email",
                    common::LawfulBasis::Consent,
                    &[pb::Channel::Email],
                )),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    // Another definition under the same key is refused: consents were given for the first.
    let other = harness
        .purposes()
        .define_purpose(call(
            &harness.internal(),
            pb::DefinePurposeRequest {
                purpose: Some(purpose(
                    "marketing_email",
                    common::LawfulBasis::LegitimateInterest,
                    &[pb::Channel::Email],
                )),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists);

    harness
        .define(
            "share:air-one",
            common::LawfulBasis::Consent,
            &[pb::Channel::Partner],
        )
        .await;
    harness
        .define(
            "orders",
            common::LawfulBasis::Contract,
            &[pb::Channel::Email, pb::Channel::Post],
        )
        .await;
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let page = harness
            .purposes()
            .list_purposes(call(
                &harness.internal(),
                pb::ListPurposesRequest {
                    page: Some(common::PageRequest {
                        page_size: 2,
                        page_token: token,
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        keys.extend(page.purposes.into_iter().map(|p| p.key));
        token = page.page.unwrap().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(keys, ["marketing_email", "share:air-one", "orders"]);

    let shared = harness
        .purposes()
        .get_purpose(call(
            &harness.internal(),
            pb::GetPurposeRequest {
                key: "share:air-one".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .purpose
        .unwrap();
    assert_eq!(shared.channels, [i32::from(pb::Channel::Partner)]);
    let missing = harness
        .purposes()
        .get_purpose(call(
            &harness.internal(),
            pb::GetPurposeRequest {
                key: "share:hotel-two".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_purposes_are_refused_naming_the_field() {
    let harness = Harness::start().await;
    let cases = [
        (
            purpose(
                "Marketing",
                common::LawfulBasis::Consent,
                &[pb::Channel::Email],
            ),
            "purpose.key",
        ),
        (
            purpose(
                "share:Not Valid",
                common::LawfulBasis::Consent,
                &[pb::Channel::Partner],
            ),
            "purpose.key",
        ),
        (
            purpose(
                "news",
                common::LawfulBasis::Unspecified,
                &[pb::Channel::Email],
            ),
            "purpose.lawful_basis",
        ),
        (
            purpose("news", common::LawfulBasis::Consent, &[]),
            "purpose.channels",
        ),
        (
            purpose(
                "news",
                common::LawfulBasis::Consent,
                &[pb::Channel::Unspecified],
            ),
            "purpose.channels[0]",
        ),
        (
            purpose(
                "news",
                common::LawfulBasis::Consent,
                &[pb::Channel::Partner],
            ),
            "purpose.channels",
        ),
        (
            purpose(
                "share:air-one",
                common::LawfulBasis::Consent,
                &[pb::Channel::Email],
            ),
            "purpose.channels",
        ),
        (
            purpose(
                "share:air-one",
                common::LawfulBasis::LegitimateInterest,
                &[pb::Channel::Partner],
            ),
            "purpose.lawful_basis",
        ),
        (
            pb::Purpose {
                data_categories: vec!["Given Name".to_owned()],
                ..purpose("news", common::LawfulBasis::Consent, &[pb::Channel::Email])
            },
            "purpose.data_categories[0]",
        ),
        (
            pb::Purpose {
                description: String::new(),
                ..purpose("news", common::LawfulBasis::Consent, &[pb::Channel::Email])
            },
            "purpose.description",
        ),
    ];
    for (bad, field) in cases {
        let status = harness
            .purposes()
            .define_purpose(call(
                &harness.internal(),
                pb::DefinePurposeRequest { purpose: Some(bad) },
            ))
            .await
            .unwrap_err();
        assert_eq!(bad_field(&status), field);
    }
    let listed = harness
        .purposes()
        .list_purposes(call(
            &harness.internal(),
            pb::ListPurposesRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.purposes.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn a_notice_is_versioned_by_its_content_and_never_changes() {
    let harness = Harness::start().await;
    harness
        .define(
            "newsletter",
            common::LawfulBasis::Consent,
            &[pb::Channel::Email],
        )
        .await;
    let text = "We will email you our newsletter once a week.";
    let version = harness.notice("newsletter", text).await;
    // The SHA-256 of the text, as anyone can recompute it.
    assert_eq!(version, sha256_hex(text));
    let again = harness
        .purposes()
        .publish_notice(call(
            &harness.internal(),
            pb::PublishNoticeRequest {
                purpose_key: "newsletter".to_owned(),
                text: text.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.version, version);
    assert!(!again.created);
    let second = harness.notice("newsletter", "Now twice a week.").await;
    assert_ne!(second, version);
    let listed = harness
        .purposes()
        .list_purposes(call(
            &harness.internal(),
            pb::ListPurposesRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.purposes[0].notice_versions, [version, second]);

    // Notices are immutable even to the service's own role.
    let refused = harness
        .sql_as_service("UPDATE notices SET text = 'changed'")
        .await
        .unwrap_err();
    assert!(refused.contains("permission denied"), "{refused}");

    let unknown = harness
        .purposes()
        .publish_notice(call(
            &harness.internal(),
            pb::PublishNoticeRequest {
                purpose_key: "nothing".to_owned(),
                text: text.to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&unknown), "purpose_key");
}

fn sha256_hex(text: &str) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[tokio::test]
async fn every_method_needs_its_scope_and_partners_are_refused() {
    let harness = Harness::start().await;
    let read_only = harness.token(TokenSpec::internal(
        "consent",
        [Scope::ConsentRead].into_iter().collect(),
    ));
    let status = harness
        .purposes()
        .define_purpose(call(
            &read_only,
            pb::DefinePurposeRequest {
                purpose: Some(purpose(
                    "news",
                    common::LawfulBasis::Consent,
                    &[pb::Channel::Email],
                )),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = harness
        .consents()
        .record_consent(call(&read_only, grant(&new_subject(), "news", "")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let partner = harness.token(TokenSpec::partner(
        "consent",
        "air-one",
        [Scope::ConsentRead, Scope::ConsentWrite]
            .into_iter()
            .collect(),
    ));
    let status = harness
        .consents()
        .get_consent_state(call(
            &partner,
            pb::GetConsentStateRequest {
                subject_id: new_subject(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = harness
        .purposes()
        .list_purposes(tonic::Request::new(pb::ListPurposesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_migrations_revert_cleanly() {
    assert_migrations_revert(&ecrm_consent::SERVICE).await;
}
