//! Another service verifies tokens with keys and revocations fetched from the running identity
//! service: revocations, disabled principals and rotations reach it within its refresh
//! interval, with no call to identity per request.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::Duration;

use ecrm_auth::{IdentityTrust, ServiceCredentials, Verifier, VerifierConfig};
use ecrm_platform::ServiceRoutes;
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_proto::ecrm::privacy::v1::{DescribeRequest, DescribeResponse};
use ecrm_testkit::{NoPersonalData, TestServer, start_server};
use support::{Harness, PUBLISH_DELAY, REFRESH, authed, within};
use tonic::{Code, Response, Status};

/// A stand-in for the profiles service (its `PersonalData`, holding nothing), verifying with
/// what it fetches from `harness`'s identity service.
async fn profiles_trusting(
    harness: &Harness,
    shutdown: tokio_util::sync::CancellationToken,
) -> TestServer {
    let (account, secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;
    let trust = IdentityTrust::new(
        harness.server.channel(),
        ServiceCredentials {
            client_id: account.client_id,
            client_secret: secret,
            scopes: vec!["profiles.read".to_owned()],
        },
    );
    let config = VerifierConfig {
        refresh_interval: REFRESH,
        ..VerifierConfig::new("ecrm-identity", "profiles")
    };
    let verifier = Verifier::start(config, trust, shutdown).await;
    start_server(
        ServiceRoutes::new(verifier).with(PersonalDataServer::new(NoPersonalData::new("profiles"))),
    )
    .await
    .unwrap()
}

async fn describe(server: &TestServer, token: &str) -> Result<DescribeResponse, Status> {
    server
        .client(PersonalDataClient::new)
        .describe(authed(DescribeRequest {}, token))
        .await
        .map(Response::into_inner)
}

async fn orchestrator_token(
    harness: &Harness,
    client_id: &str,
    secret: &str,
) -> pb::IssueTokenResponse {
    harness
        .client_token(client_id, secret, &["privacy.execute"], "profiles")
        .await
        .unwrap()
}

const BOUND: Duration = Duration::from_millis(REFRESH.as_millis() as u64 + 1000);

#[tokio::test(flavor = "multi_thread")]
async fn revocations_disablings_and_rotations_reach_another_service_within_its_refresh_interval() {
    let harness = Harness::start().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let profiles = profiles_trusting(&harness, shutdown.clone()).await;
    let (orchestrator, secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["privacy.execute"])
        .await;

    let first = orchestrator_token(&harness, &orchestrator.client_id, &secret).await;
    assert_eq!(
        describe(&profiles, &first.access_token)
            .await
            .unwrap()
            .service,
        "profiles"
    );
    // A token for identity is no good here, and identity's admin has no privacy.execute.
    let refused = describe(&profiles, &harness.admin_token).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // Revoked at identity: refused here within the bound.
    harness
        .tokens()
        .revoke_token(authed(
            pb::RevokeTokenRequest {
                jti: first.jti.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    let revoked = within(BOUND, || async {
        matches!(describe(&profiles, &first.access_token).await, Err(s) if s.message() == "token revoked")
    })
    .await;
    assert!(
        revoked.is_some(),
        "revocation did not reach the other service"
    );

    // Signed by a key promoted by a rotation: accepted at once (the key was published before).
    tokio::time::sleep(PUBLISH_DELAY).await;
    harness
        .keys()
        .rotate_signing_keys(authed(
            pb::RotateSigningKeysRequest {},
            &harness.admin_token,
        ))
        .await
        .unwrap();
    let second = orchestrator_token(&harness, &orchestrator.client_id, &secret).await;
    assert!(describe(&profiles, &second.access_token).await.is_ok());

    // The account disabled at identity: refused here within the bound.
    harness
        .accounts()
        .disable_service_account(authed(
            pb::DisableServiceAccountRequest {
                id: orchestrator.id.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    let disabled = within(BOUND, || async {
        matches!(describe(&profiles, &second.access_token).await, Err(s) if s.message() == "principal disabled")
    })
    .await;
    assert!(
        disabled.is_some(),
        "disabling did not reach the other service"
    );
    shutdown.cancel();
}
