//! The customer asks to be erased: the request is verified with a code emailed to them,
//! approved, carried out at every service, and proven by a signed certificate.

use std::collections::BTreeSet;

use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::outbound::v1 as outbound;
use ecrm_proto::ecrm::outbound::v1::messages_client::MessagesClient;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_proto::ecrm::segmentation::v1 as segmentation;
use ecrm_proto::ecrm::segmentation::v1::rfm_client::RfmClient;
use ecrm_proto::ecrm::segmentation::v1::segments_client::SegmentsClient;
use ecrm_suite::Member;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;

use super::{BUYERS, MARKETING};
use crate::support::customers::{by_id, by_identifier, email};
use crate::support::{Caller, Journey, authorized, eventually, reading};

/// Every service holding personal data, as the certificate names them.
const SERVICES: [&str; 4] = ["consent", "outbound", "profiles", "segmentation"];

pub async fn is_carried_out_everywhere(
    journey: &Journey,
    officer: &Caller,
    subject: &str,
    address: &str,
) {
    let request = verified_and_approved(journey, officer, address).await;
    assert_eq!(request.subject_id, subject);
    let done = completed(journey, officer, &request.request_id).await;
    let tasks: BTreeSet<(&str, &str, bool)> = done
        .tasks
        .iter()
        .map(|t| (t.service.as_str(), t.action.as_str(), t.done))
        .collect();
    let expected: BTreeSet<(&str, &str, bool)> = SERVICES
        .into_iter()
        .flat_map(|s| [(s, "erase", true), (s, "verify_erased", true)])
        .collect();
    assert_eq!(tasks, expected, "{done:?}");

    let certificate = certificate(journey, officer, &request.request_id).await;
    assert_eq!(certificate["subject_id"], subject);
    gone_everywhere(journey, officer, subject, address, &certificate).await;
}

/// Submitted by email address; the code outbound mails to the address on file verifies the
/// requester (a legal obligation, so it goes although they opted out of marketing); an
/// operator approves.
pub(crate) async fn verified_and_approved(
    journey: &Journey,
    officer: &Caller,
    address: &str,
) -> consent::DataSubjectRequest {
    TemplatesClient::new(journey.channel(Member::Outbound))
        .upsert_template(authorized(
            &officer.token(Member::Outbound).await,
            outbound::UpsertTemplateRequest {
                template: Some(outbound::Template {
                    key: "dsr_verification".to_owned(),
                    channel: outbound::Channel::Email.into(),
                    locale: "en".to_owned(),
                    subject: "Your verification code".to_owned(),
                    body: "<p>Your code for your {{ request_type }} request is {{ code }}. \
                           It works until {{ expires_at }}.</p>"
                        .to_owned(),
                    variables: vec![
                        "code".to_owned(),
                        "request_type".to_owned(),
                        "expires_at".to_owned(),
                    ],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let token = officer.token(Member::Consent).await;
    let mut requests = requests(journey);
    let before = journey.smtp.count();
    let submitted = requests
        .submit_request(authorized(
            &token,
            consent::SubmitRequestRequest {
                subject: Some(by_identifier(email(address))),
                r#type: consent::RequestType::Erasure.into(),
                channel: consent::RequestChannel::Email.into(),
                received_at: None,
                corrections: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(
        submitted.status(),
        consent::RequestStatus::AwaitingVerification
    );
    assert!(
        submitted.verification_error.is_empty(),
        "{}",
        submitted.verification_error
    );

    let mails = journey
        .smtp
        .wait_for(before + 1, crate::support::DEADLINE)
        .await;
    assert_eq!(mails.len(), before + 1, "{mails:?}");
    let mail = mails.last().unwrap();
    assert_eq!(mail.rcpt_to, [address]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your verification code")
    );
    let text = mail.html().unwrap_or_else(|| mail.text());
    let code = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_owned();
    let verified = requests
        .confirm_requester(authorized(
            &token,
            consent::ConfirmRequesterRequest {
                request_id: submitted.request_id.clone(),
                code,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(verified.status(), consent::RequestStatus::AwaitingApproval);
    requests
        .approve_request(authorized(
            &token,
            consent::ApproveRequestRequest {
                request_id: submitted.request_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap()
}

pub(crate) async fn completed(
    journey: &Journey,
    officer: &Caller,
    id: &str,
) -> consent::DataSubjectRequest {
    let token = officer.token(Member::Consent).await;
    eventually("the request carried out", || {
        let (mut requests, token, id) = (requests(journey), token.clone(), id.to_owned());
        async move {
            let request = requests
                .get_request(authorized(
                    &token,
                    consent::GetRequestRequest { request_id: id },
                ))
                .await
                .unwrap()
                .into_inner()
                .request
                .unwrap();
            assert!(
                request.tasks.iter().all(|t| !t.failed),
                "a task was refused: {request:?}"
            );
            (request.status() == consent::RequestStatus::Completed).then_some(request)
        }
    })
    .await
}

/// The certificate, its signature checked with the key consent's master key derives for its
/// documents (as a compliance officer holding the key would), not only the one it carries.
pub(crate) async fn certificate(journey: &Journey, officer: &Caller, id: &str) -> Value {
    let signed = requests(journey)
        .get_erasure_certificate(authorized(
            &officer.token(Member::Consent).await,
            consent::GetErasureCertificateRequest {
                request_id: id.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let key = journey
        .keys
        .consent
        .signing_key("consent.documents")
        .unwrap();
    use ring::signature::KeyPair as _;
    assert_eq!(signed.public_key, hex::encode(key.public_key().as_ref()));
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.public_key().as_ref())
        .verify(
            signed.certificate_json.as_bytes(),
            &hex::decode(&signed.signature).unwrap(),
        )
        .expect("the certificate's signature verifies with consent's documents key");
    // A tampered certificate does not.
    let tampered = signed.certificate_json.replacen("erase", "erasE", 1);
    assert!(
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            key.public_key().as_ref()
        )
        .verify(
            tampered.as_bytes(),
            &hex::decode(&signed.signature).unwrap()
        )
        .is_err()
    );

    let document: Value = serde_json::from_str(&signed.certificate_json).unwrap();
    assert_eq!(document["request_id"], id);
    let named = |list: &str| -> BTreeSet<String> {
        document[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["service"].as_str().unwrap().to_owned())
            .collect()
    };
    let every: BTreeSet<String> = SERVICES.map(str::to_owned).into();
    assert_eq!(named("receipts"), every, "{document}");
    assert_eq!(named("follow_up_exports"), every, "{document}");
    for check in document["follow_up_exports"].as_array().unwrap() {
        assert_eq!(
            check["result"]["all_retained_by_receipt"], true,
            "{document}"
        );
    }
    document
}

/// The receipt `service` gave, from the certificate.
fn receipt<'a>(certificate: &'a Value, service: &str) -> &'a Value {
    certificate["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == service)
        .map(|r| &r["receipt"])
        .unwrap_or_else(|| panic!("no receipt of {service} in {certificate}"))
}

/// What `service` kept, by category, with a legal reason for each.
fn retained(certificate: &Value, service: &str) -> BTreeSet<String> {
    receipt(certificate, service)["retained"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kept| {
            assert!(
                !kept["legal_reason"].as_str().unwrap_or_default().is_empty(),
                "{kept}"
            );
            kept["category"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Every service answers as its receipt says: nothing left but what it kept, and why.
async fn gone_everywhere(
    journey: &Journey,
    officer: &Caller,
    subject: &str,
    address: &str,
    certificate: &Value,
) {
    // Profiles: no profile by id or by address. Orders stay for the accounts, pseudonymised.
    let token = officer.token(Member::Profiles).await;
    let mut profiles = ProfilesClient::new(journey.channel(Member::Profiles));
    for reference in [by_id(subject), by_identifier(email(address))] {
        let status = profiles
            .get_profile(reading(
                &token,
                "customer_service",
                profiles::GetProfileRequest {
                    subject: Some(reference),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    assert_eq!(
        retained(certificate, "profiles"),
        BTreeSet::from(["interactions.orders".to_owned()]),
        "{certificate}"
    );
    assert_eq!(
        count(certificate, "profiles", "retained", "interactions.orders"),
        Some(2)
    );
    assert!(
        receipt(certificate, "profiles")["retained"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["pseudonymised"] == true),
        "{certificate}"
    );

    // Segmentation: in no segment and no score any more.
    let token = officer.token(Member::Segmentation).await;
    let member = SegmentsClient::new(journey.channel(Member::Segmentation))
        .is_member(authorized(
            &token,
            segmentation::IsMemberRequest {
                segment: BUYERS.to_owned(),
                subject_id: subject.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!member.member);
    let members = SegmentsClient::new(journey.channel(Member::Segmentation))
        .get_members(authorized(
            &token,
            segmentation::GetMembersRequest {
                segment: BUYERS.to_owned(),
                page: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(members.members.iter().all(|m| m.subject_id != subject));
    let status = RfmClient::new(journey.channel(Member::Segmentation))
        .get_rfm(authorized(
            &token,
            segmentation::GetRfmRequest {
                subject_id: subject.to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        retained(certificate, "segmentation").is_empty(),
        "{certificate}"
    );

    // Outbound: no message left; the address's suppression, kept as a blind index only.
    let left = MessagesClient::new(journey.channel(Member::Outbound))
        .list_messages(authorized(
            &officer.token(Member::Outbound).await,
            outbound::ListMessagesRequest {
                subject_id: subject.to_owned(),
                page: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(left.messages.is_empty(), "{left:?}");
    // Both campaigns' messages and the verification code's.
    assert_eq!(
        count(certificate, "outbound", "erased", "outbound.messages"),
        Some(3)
    );
    assert_eq!(
        retained(certificate, "outbound"),
        BTreeSet::from(["outbound.suppressions".to_owned()]),
        "{certificate}"
    );

    // Consent: proof of what the subject agreed to (the grant and the withdrawal) and of their
    // request stays, keyed by subject id only, as its receipt says; and still denies marketing.
    assert_eq!(
        retained(certificate, "consent"),
        BTreeSet::from(["consent.ledger".to_owned(), "consent.requests".to_owned()]),
        "{certificate}"
    );
    let token = officer.token(Member::Consent).await;
    let mut consents = ConsentsClient::new(journey.channel(Member::Consent));
    let history = consents
        .list_consent_history(authorized(
            &token,
            consent::ListConsentHistoryRequest {
                subject_id: subject.to_owned(),
                page: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        Some(history.entries.len() as u64),
        count(certificate, "consent", "retained", "consent.ledger")
    );
    let check = consents
        .check_consent(authorized(
            &token,
            consent::CheckConsentRequest {
                purpose_key: MARKETING.to_owned(),
                channel: consent::Channel::Email.into(),
                subject_ids: vec![subject.to_owned()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!check.decisions[0].allowed, "{check:?}");
}

/// How many of `category` the receipt of `service` says it erased or retained (`list`).
fn count(certificate: &Value, service: &str, list: &str, category: &str) -> Option<u64> {
    receipt(certificate, service)[list]
        .as_array()?
        .iter()
        .find(|entry| entry["category"] == category)?["count"]
        .as_u64()
}

fn requests(journey: &Journey) -> DataSubjectRequestsClient<Channel> {
    DataSubjectRequestsClient::new(journey.channel(Member::Consent))
}
