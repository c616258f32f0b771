//! `ecrm up` killed outright (SIGKILL) while a data subject request is being carried out: the
//! next `ecrm up` on the same folder takes the request up where it was, completes it, and the
//! erasure certificate it issues verifies.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::{Duration, Instant};

use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ring::signature::{ED25519, UnparsedPublicKey};
use support::up::{Up, authorized, channel_to, operator_token, printed_password, scratch};

/// A customer registered at profiles; their subject id.
async fn customer(up: &Up, password: &str) -> String {
    let token = operator_token(
        up.endpoints["identity"],
        "admin",
        password,
        &["profiles.write"],
        "profiles",
    )
    .await
    .unwrap();
    profiles::profiles_client::ProfilesClient::new(channel_to(up.endpoints["profiles"]).await)
        .upsert_profile(authorized(
            &token,
            profiles::UpsertProfileRequest {
                identifiers: vec![profiles::NewIdentifier {
                    identifier: Some(common::Identifier {
                        kind: common::IdentifierKind::Email.into(),
                        value: "crash@example.com".to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                source: "web_shop".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
        .subject_id
}

async fn requests(
    up: &Up,
    password: &str,
) -> (DataSubjectRequestsClient<tonic::transport::Channel>, String) {
    let officer = operator_token(
        up.endpoints["identity"],
        "admin",
        password,
        &["dsr.submit", "dsr.manage"],
        "consent",
    )
    .await
    .unwrap();
    (
        DataSubjectRequestsClient::new(channel_to(up.endpoints["consent"]).await),
        officer,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_cut_short_by_a_crash_completes_after_a_restart_and_its_certificate_verifies() {
    let scratch = scratch();
    let up = Up::start(scratch.path(), &[]);
    let password = printed_password(&up).unwrap();
    let subject = customer(&up, &password).await;

    let (mut dsr, officer) = requests(&up, &password).await;
    let id = dsr
        .submit_request(authorized(
            &officer,
            consent::SubmitRequestRequest {
                subject: Some(common::SubjectRef {
                    subject: Some(common::subject_ref::Subject::SubjectId(subject.clone())),
                }),
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
        .unwrap()
        .request_id;
    dsr.verify_requester(authorized(
        &officer,
        consent::VerifyRequesterRequest {
            request_id: id.clone(),
            reason: "replied from the address on file".to_owned(),
        },
    ))
    .await
    .unwrap();
    dsr.approve_request(authorized(
        &officer,
        consent::ApproveRequestRequest {
            request_id: id.clone(),
        },
    ))
    .await
    .unwrap();
    // The fan-out starts on approval: killed as it begins, nothing is shut down cleanly.
    up.crash();

    let up = Up::start(scratch.path(), &[]);
    let (mut dsr, officer) = requests(&up, &password).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = dsr
            .get_request(authorized(
                &officer,
                consent::GetRequestRequest {
                    request_id: id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .request
            .unwrap();
        if request.status() == consent::RequestStatus::Completed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not carried out after the restart: {request:?}\n{}",
            up.report()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let certificate = dsr
        .get_erasure_certificate(authorized(
            &officer,
            consent::GetErasureCertificateRequest {
                request_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    UnparsedPublicKey::new(&ED25519, hex::decode(&certificate.public_key).unwrap())
        .verify(
            certificate.certificate_json.as_bytes(),
            &hex::decode(&certificate.signature).unwrap(),
        )
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(&certificate.certificate_json).unwrap();
    assert_eq!(document["request_id"], id.as_str());
    assert_eq!(document["subject_id"], subject.as_str());
    let mut services: Vec<&str> = document["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|receipt| receipt["service"].as_str().unwrap())
        .collect();
    services.sort_unstable();
    assert_eq!(
        services,
        ["consent", "outbound", "profiles", "segmentation"]
    );
    up.stop(nix::sys::signal::Signal::SIGTERM);
}
