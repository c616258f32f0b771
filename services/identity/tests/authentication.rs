//! Every call to the running service is authenticated: forged, altered and stale tokens are
//! refused with UNAUTHENTICATED, missing scopes with PERMISSION_DENIED.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecrm_auth::Claims;
use ecrm_proto::ecrm::identity::v1 as pb;
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use support::{ADMIN_PASSWORD, Harness};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims the service accepts: those of its admin's token.
fn admin_claims(harness: &Harness) -> Claims {
    harness.claims_of(&harness.admin_token)
}

/// A token with `header` and `claims`, signed by a key nobody trusts.
fn signed_by_stranger(header: serde_json::Value, claims: &Claims) -> String {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_string(claims).unwrap())
    );
    let signature = pair.sign(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

async fn refused(harness: &Harness, token: &str) -> tonic::Status {
    harness.call_with(token).await.unwrap_err()
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_health_needs_none() {
    let harness = Harness::start().await;
    assert!(harness.call_with(&harness.admin_token).await.is_ok());

    let health = harness
        .server
        .client(HealthClient::new)
        .check(HealthCheckRequest {
            service: "ecrm.identity.v1.Tokens".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, 1);
}

#[tokio::test]
async fn no_token_or_a_token_that_is_not_a_bearer_jwt_is_unauthenticated() {
    let harness = Harness::start().await;
    let bare = harness
        .keys()
        .list_signing_keys(pb::ListSigningKeysRequest {})
        .await
        .unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated);
    assert_eq!(bare.message(), "missing bearer token");

    let mut basic = tonic::Request::new(pb::ListSigningKeysRequest {});
    basic
        .metadata_mut()
        .insert("authorization", "Basic YWRtaW46YWRtaW4=".parse().unwrap());
    let status = harness.keys().list_signing_keys(basic).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    assert_eq!(
        refused(&harness, "garbage").await.code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_signed_by_the_service_are_unauthenticated() {
    let harness = Harness::start().await;
    let base = admin_claims(&harness);

    let expired = harness
        .sign_as_service(&Claims {
            iat: now() - 3600,
            nbf: now() - 3600,
            exp: now() - 120,
            ..base.clone()
        })
        .await;
    let status = refused(&harness, &expired).await;
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, "token expired")
    );

    let early = harness
        .sign_as_service(&Claims {
            nbf: now() + 600,
            exp: now() + 1200,
            ..base
        })
        .await;
    let status = refused(&harness, &early).await;
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, "token not yet valid")
    );
}

#[tokio::test]
async fn another_audience_or_issuer_is_unauthenticated() {
    let harness = Harness::start().await;
    let base = admin_claims(&harness);

    let for_profiles = harness
        .sign_as_service(&Claims {
            aud: "profiles".to_owned(),
            ..base.clone()
        })
        .await;
    assert_eq!(
        refused(&harness, &for_profiles).await.code(),
        Code::Unauthenticated
    );
    let foreign = harness
        .sign_as_service(&Claims {
            iss: "https://evil.example".to_owned(),
            ..base
        })
        .await;
    assert_eq!(
        refused(&harness, &foreign).await.code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn a_tampered_payload_is_unauthenticated() {
    let harness = Harness::start().await;
    let operator = harness
        .login("admin", ADMIN_PASSWORD, &["dsr.submit"], "identity")
        .await
        .unwrap()
        .access_token;
    let mut parts: Vec<String> = operator.split('.').map(str::to_owned).collect();
    let escalated = Claims {
        scope: "identity.admin".to_owned(),
        ..harness.claims_of(&operator)
    };
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_string(&escalated).unwrap());

    let status = refused(&harness, &parts.join(".")).await;
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, "invalid token signature")
    );
}

#[tokio::test]
async fn alg_none_and_hs256_keyed_with_the_public_key_are_unauthenticated() {
    let harness = Harness::start().await;
    let claims = admin_claims(&harness);
    let kid = jsonwebtoken::decode_header(&harness.admin_token)
        .unwrap()
        .kid
        .unwrap();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims).unwrap());

    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#))
    );
    assert_eq!(refused(&harness, &none).await.code(), Code::Unauthenticated);

    let jwks = harness
        .tokens()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let public = jwks
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .unwrap()
        .ed25519_public_key
        .clone();
    let message = format!(
        "{}.{payload}",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#))
    );
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public),
        message.as_bytes(),
    );
    let confused = format!("{message}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    let status = refused(&harness, &confused).await;
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, "token algorithm not allowed")
    );
}

#[tokio::test]
async fn an_unknown_kid_or_a_key_in_the_header_is_unauthenticated() {
    let harness = Harness::start().await;
    let claims = admin_claims(&harness);

    let stranger = signed_by_stranger(
        serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "not-ours"}),
        &claims,
    );
    let status = refused(&harness, &stranger).await;
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, "token signed by an unknown key")
    );

    for header in [
        serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "x", "jku": "https://evil.example/jwks.json"}),
        serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "x", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}),
    ] {
        let token = signed_by_stranger(header, &claims);
        let status = refused(&harness, &token).await;
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unauthenticated, "token header names its own key")
        );
    }
}

#[tokio::test]
async fn a_token_without_the_methods_scope_is_permission_denied() {
    let harness = Harness::start().await;
    let officer_password = "officer-password-long";
    harness
        .create_operator(
            "officer",
            officer_password,
            pb::OperatorRole::ComplianceOfficer,
        )
        .await;
    let officer = harness
        .login("officer", officer_password, &["dsr.submit"], "identity")
        .await
        .unwrap();
    assert!(!officer.scopes.contains(&"identity.admin".to_owned()));

    let status = refused(&harness, &officer.access_token).await;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("identity.admin"),
        "{}",
        status.message()
    );

    // A token may still do what needs no scope: revoke itself.
    let revoked = harness
        .tokens()
        .revoke_token(support::authed(
            pb::RevokeTokenRequest {
                jti: officer.jti.clone(),
            },
            &officer.access_token,
        ))
        .await
        .unwrap();
    assert!(revoked.into_inner().newly_revoked);
}
