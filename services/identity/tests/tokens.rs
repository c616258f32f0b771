//! Issuing tokens: who gets one, with which scopes, and what happens to wrong credentials.

mod support;

use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::signing_keys_client::SigningKeysClient;
use support::{ADMIN_PASSWORD, Harness};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn an_operator_logs_in_and_gets_the_scopes_of_its_roles() {
    let harness = Harness::start().await;

    let token = harness
        .login(
            "admin",
            ADMIN_PASSWORD,
            &["identity.admin", "dsr.manage"],
            "identity",
        )
        .await
        .unwrap();

    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.scopes, ["identity.admin", "dsr.manage"]);
    // No operator role grants privacy.execute: only the orchestrator's internal account holds it.
    let internal_only = harness
        .login("admin", ADMIN_PASSWORD, &["privacy.execute"], "profiles")
        .await
        .unwrap_err();
    assert_eq!(internal_only.code(), Code::PermissionDenied);
    let claims = harness.claims_of(&token.access_token);
    assert_eq!(claims.aud, "identity");
    assert_eq!(claims.iss, "ecrm-identity");
    assert_eq!(claims.jti, token.jti);
    assert_eq!(claims.exp - claims.iat, 15 * 60);
    assert!(harness.call_with(&token.access_token).await.is_ok());
}

#[tokio::test]
async fn a_token_carries_only_the_scopes_asked_for() {
    let harness = Harness::start().await;
    let (account, secret) = harness
        .create_account(
            pb::PrincipalKind::Internal,
            "",
            &["profiles.read", "profiles.write", "identity.admin"],
        )
        .await;

    let narrow = harness
        .client_token(&account.client_id, &secret, &["profiles.read"], "profiles")
        .await
        .unwrap();
    assert_eq!(narrow.scopes, ["profiles.read"]);
    assert_eq!(
        harness.claims_of(&narrow.access_token).scope,
        "profiles.read"
    );

    let several = harness
        .client_token(
            &account.client_id,
            &secret,
            &["profiles.write", "identity.admin"],
            "identity",
        )
        .await
        .unwrap();
    assert_eq!(several.scopes, ["identity.admin", "profiles.write"]);

    // Asking for nothing gets nothing: a token never carries a scope it was not asked for.
    let nothing = harness
        .client_token(&account.client_id, &secret, &[], "identity")
        .await
        .unwrap_err();
    assert_eq!(nothing.code(), Code::InvalidArgument);

    // A token for profiles is no good at identity, whatever its scopes.
    let for_profiles = harness
        .client_token(&account.client_id, &secret, &["identity.admin"], "profiles")
        .await
        .unwrap();
    let refused = harness
        .call_with(&for_profiles.access_token)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_partner_cannot_obtain_a_scope_it_was_not_granted() {
    let harness = Harness::start().await;
    let (partner, secret) = harness
        .create_account(
            pb::PrincipalKind::Partner,
            "air-example",
            &["profiles.read"],
        )
        .await;

    let refused = harness
        .client_token(
            &partner.client_id,
            &secret,
            &["profiles.read", "profiles.write"],
            "profiles",
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("profiles.write"),
        "{}",
        refused.message()
    );

    let granted = harness
        .client_token(&partner.client_id, &secret, &["profiles.read"], "profiles")
        .await
        .unwrap();
    let claims = harness.claims_of(&granted.access_token);
    assert_eq!(claims.partner_id.as_deref(), Some("air-example"));
    assert_eq!(claims.kind, ecrm_auth::PrincipalKind::Partner);

    // Nor can a partner account be made to hold an administrative or internal-only scope.
    let response = harness
        .accounts()
        .create_service_account(support::authed(
            pb::CreateServiceAccountRequest {
                display_name: "greedy partner".to_owned(),
                kind: pb::PrincipalKind::Partner.into(),
                partner_id: "air-example".to_owned(),
                scopes: vec!["identity.admin".to_owned(), "privacy.execute".to_owned()],
                secret_expires_at: None,
            },
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(response.code(), Code::InvalidArgument);
    let details = response.get_error_details();
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "scopes"
    );
}

#[tokio::test]
async fn wrong_secrets_and_unknown_clients_are_refused_alike() {
    let harness = Harness::start().await;
    let (account, _secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;

    let wrong = harness
        .client_token(
            &account.client_id,
            "ecrm_sk_wrong",
            &["profiles.read"],
            "profiles",
        )
        .await
        .unwrap_err();
    let unknown = harness
        .client_token(
            "ecrm_ci_nobody",
            "ecrm_sk_wrong",
            &["profiles.read"],
            "profiles",
        )
        .await
        .unwrap_err();
    let wrong_password = harness
        .login("admin", "not the password", &["identity.admin"], "identity")
        .await
        .unwrap_err();

    for status in [&wrong, &unknown, &wrong_password] {
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "invalid credentials");
    }
}

#[tokio::test]
async fn repeated_failures_block_that_principal_with_retry_info() {
    let harness = Harness::start().await;
    let (target, secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;
    let (bystander, bystander_secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;

    for _ in 0..ecrm_identity::FREE_ATTEMPTS {
        let status = harness
            .client_token(
                &target.client_id,
                "ecrm_sk_guess",
                &["profiles.read"],
                "profiles",
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }

    // Even the right secret waits now: guessing is slowed, whatever the guess.
    let blocked = harness
        .client_token(&target.client_id, &secret, &["profiles.read"], "profiles")
        .await
        .unwrap_err();
    assert_eq!(blocked.code(), Code::ResourceExhausted);
    let retry = blocked
        .get_error_details()
        .retry_info()
        .unwrap()
        .retry_delay
        .unwrap();
    assert!(retry.as_secs() >= 1 && retry.as_secs() <= 5, "{retry:?}");

    // Others are not affected.
    assert!(
        harness
            .client_token(
                &bystander.client_id,
                &bystander_secret,
                &["profiles.read"],
                "profiles"
            )
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_unknown_audience_scope_or_missing_grant_names_the_field() {
    let harness = Harness::start().await;
    let cases = [
        (
            pb::IssueTokenRequest {
                grant: None,
                scopes: vec![],
                audience: "identity".to_owned(),
                start_session: false,
            },
            "grant",
        ),
        (
            pb::IssueTokenRequest {
                grant: Some(pb::issue_token_request::Grant::OperatorPassword(
                    pb::OperatorPassword {
                        username: "admin".to_owned(),
                        password: ADMIN_PASSWORD.to_owned(),
                    },
                )),
                scopes: vec![],
                audience: "billing".to_owned(),
                start_session: false,
            },
            "audience",
        ),
        (
            pb::IssueTokenRequest {
                grant: Some(pb::issue_token_request::Grant::OperatorPassword(
                    pb::OperatorPassword {
                        username: "admin".to_owned(),
                        password: ADMIN_PASSWORD.to_owned(),
                    },
                )),
                scopes: vec!["root".to_owned()],
                audience: "identity".to_owned(),
                start_session: false,
            },
            "scopes",
        ),
    ];
    for (request, field) in cases {
        let status = harness.tokens().issue_token(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        let details = status.get_error_details();
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            field
        );
    }
}

#[tokio::test]
async fn issued_tokens_verify_against_the_published_jwks_without_a_token() {
    let harness = Harness::start().await;
    let token = harness
        .login("admin", ADMIN_PASSWORD, &["profiles.read"], "profiles")
        .await
        .unwrap();

    // GetJwks needs no token.
    let jwks = harness
        .tokens()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let set: ecrm_auth::JwkSet = serde_json::from_str(&jwks.jwks_json).unwrap();
    assert_eq!(set.keys.len(), 2, "the active key and the next one");

    let header = jsonwebtoken::decode_header(&token.access_token).unwrap();
    let jwk = set
        .keys
        .iter()
        .find(|k| Some(&k.kid) == header.kid.as_ref())
        .unwrap();
    let key = jsonwebtoken::DecodingKey::from_ed_components(&jwk.x).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["profiles"]);
    validation.set_issuer(&["ecrm-identity"]);
    let data =
        jsonwebtoken::decode::<ecrm_auth::Claims>(&token.access_token, &key, &validation).unwrap();
    assert_eq!(data.claims.jti, token.jti);

    // And an admin call without a token is refused.
    let refused = harness
        .server
        .client(SigningKeysClient::new)
        .list_signing_keys(pb::ListSigningKeysRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_sent_all_at_once_are_counted_before_any_is_checked() {
    let harness = std::sync::Arc::new(Harness::start().await);
    let (target, _secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;

    let guesses = (0..30).map(|i| {
        let (harness, client_id) = (harness.clone(), target.client_id.clone());
        tokio::spawn(async move {
            harness
                .client_token(
                    &client_id,
                    &format!("ecrm_sk_guess_{i}"),
                    &["profiles.read"],
                    "profiles",
                )
                .await
                .unwrap_err()
                .code()
        })
    });
    let codes = futures::future::join_all(guesses).await;

    let checked = codes
        .iter()
        .filter(|c| matches!(c, Ok(Code::Unauthenticated)))
        .count();
    let throttled = codes
        .iter()
        .filter(|c| matches!(c, Ok(Code::ResourceExhausted)))
        .count();
    assert!(
        checked <= ecrm_identity::FREE_ATTEMPTS as usize,
        "{checked} guesses were checked"
    );
    assert_eq!(checked + throttled, 30);
}

#[tokio::test]
async fn unknown_names_are_throttled_like_known_ones() {
    let harness = Harness::start().await;
    let mut codes = Vec::new();
    for _ in 0..=ecrm_identity::FREE_ATTEMPTS {
        let status = harness
            .client_token(
                "ecrm_ci_nobody_here",
                "ecrm_sk_guess",
                &["profiles.read"],
                "profiles",
            )
            .await
            .unwrap_err();
        codes.push(status.code());
    }
    // Five indistinguishable refusals, then the same block a real account gets: the answers
    // do not tell whether the account exists.
    assert!(
        codes[..5].iter().all(|c| *c == Code::Unauthenticated),
        "{codes:?}"
    );
    assert_eq!(codes[5], Code::ResourceExhausted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_logging_in_several_times_at_once_is_not_blocked() {
    let harness = std::sync::Arc::new(Harness::start().await);
    let (account, secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;

    for _ in 0..3 {
        let logins = (0..ecrm_identity::FREE_ATTEMPTS).map(|_| {
            let (harness, client_id, secret) =
                (harness.clone(), account.client_id.clone(), secret.clone());
            tokio::spawn(async move {
                harness
                    .client_token(&client_id, &secret, &["profiles.read"], "profiles")
                    .await
                    .map(drop)
            })
        });
        for login in futures::future::join_all(logins).await {
            login.unwrap().unwrap();
        }
    }
}
