//! Revoking a token, or disabling its principal, takes effect within the verifiers' refresh
//! interval, without a call to identity per request.

mod support;

use std::time::Duration;

use ecrm_proto::ecrm::identity::v1 as pb;
use support::{ADMIN_PASSWORD, Harness, REFRESH, authed, within};
use tonic::Code;

/// The stated bound is one refresh interval plus one fetch; the margin absorbs a loaded machine.
const BOUND: Duration = Duration::from_millis(REFRESH.as_millis() as u64 + 1000);

async fn refused_with(harness: &Harness, token: &str, message: &str) -> bool {
    matches!(harness.call_with(token).await, Err(status) if status.code() == Code::Unauthenticated && status.message() == message)
}

#[tokio::test]
async fn a_revoked_token_is_refused_within_the_refresh_interval() {
    let harness = Harness::start().await;
    let token = harness
        .login("admin", ADMIN_PASSWORD, &["identity.admin"], "identity")
        .await
        .unwrap();
    assert!(harness.call_with(&token.access_token).await.is_ok());

    let response = harness
        .tokens()
        .revoke_token(authed(
            pb::RevokeTokenRequest {
                jti: token.jti.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(response.newly_revoked);

    let took = within(BOUND, || {
        refused_with(&harness, &token.access_token, "token revoked")
    })
    .await;
    assert!(
        took.is_some(),
        "revoked token still accepted after {BOUND:?}"
    );
    // Other tokens of the same principal still work.
    assert!(harness.call_with(&harness.admin_token).await.is_ok());

    // Verifiers of other services learn it from ListRevocations, with their own tokens.
    let (service, secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;
    let service_token = harness
        .client_token(&service.client_id, &secret, &["profiles.read"], "identity")
        .await
        .unwrap();
    let revocations = harness
        .tokens()
        .list_revocations(authed(
            pb::ListRevocationsRequest {},
            &service_token.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        revocations
            .revoked_tokens
            .iter()
            .any(|r| r.jti == token.jti)
    );
}

#[tokio::test]
async fn only_an_admin_revokes_another_principals_token() {
    let harness = Harness::start().await;
    let (account, secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;
    let service_token = harness
        .client_token(&account.client_id, &secret, &["profiles.read"], "identity")
        .await
        .unwrap();

    let status = harness
        .tokens()
        .revoke_token(authed(
            pb::RevokeTokenRequest {
                jti: harness.claims_of(&harness.admin_token).jti,
            },
            &service_token.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(harness.call_with(&harness.admin_token).await.is_ok());
}

#[tokio::test]
async fn a_disabled_service_account_is_refused_within_the_bound_and_cannot_log_in() {
    let harness = Harness::start().await;
    let (account, secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["identity.admin"])
        .await;
    let token = harness
        .client_token(&account.client_id, &secret, &["identity.admin"], "identity")
        .await
        .unwrap();
    assert!(harness.call_with(&token.access_token).await.is_ok());

    let disabled = harness
        .accounts()
        .disable_service_account(authed(
            pb::DisableServiceAccountRequest {
                id: account.id.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(disabled.account.unwrap().disabled_at.is_some());

    let took = within(BOUND, || {
        refused_with(&harness, &token.access_token, "principal disabled")
    })
    .await;
    assert!(
        took.is_some(),
        "disabled account still accepted after {BOUND:?}"
    );
    // Its secret no longer logs in, and the answer does not confirm the secret was right.
    let login = harness
        .client_token(&account.client_id, &secret, &["identity.admin"], "identity")
        .await
        .unwrap_err();
    assert_eq!(
        (login.code(), login.message()),
        (Code::Unauthenticated, "invalid credentials")
    );
}

#[tokio::test]
async fn a_disabled_operator_is_refused_within_the_bound() {
    let harness = Harness::start().await;
    let password = "marketer-password-long";
    let created = harness
        .create_operator("marketer@example.com", password, pb::OperatorRole::Admin)
        .await;
    let token = harness
        .login(&created.username, password, &["identity.admin"], "identity")
        .await
        .unwrap();
    assert!(harness.call_with(&token.access_token).await.is_ok());

    harness
        .operators()
        .disable_operator(authed(
            pb::DisableOperatorRequest {
                operator: created.id,
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();

    let took = within(BOUND, || {
        refused_with(&harness, &token.access_token, "principal disabled")
    })
    .await;
    assert!(
        took.is_some(),
        "disabled operator still accepted after {BOUND:?}"
    );
}

#[tokio::test]
async fn only_internal_services_read_the_revocation_list() {
    let harness = Harness::start().await;
    let (partner, secret) = harness
        .create_account(
            pb::PrincipalKind::Partner,
            "air-example",
            &["profiles.read"],
        )
        .await;
    let token = harness
        .client_token(&partner.client_id, &secret, &["profiles.read"], "identity")
        .await
        .unwrap();

    let refused = harness
        .tokens()
        .list_revocations(authed(pb::ListRevocationsRequest {}, &token.access_token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let anonymous = harness
        .tokens()
        .list_revocations(pb::ListRevocationsRequest {})
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}
