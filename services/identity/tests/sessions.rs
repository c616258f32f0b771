//! Sessions: a login may start one, whose refresh token then issues tokens for any audience and
//! any scope the principal holds at that moment, until it expires or ends (EndSession, a new
//! password, the principal disabled). Only a digest of the refresh token is stored.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::Duration;

use diesel::{Connection, RunQueryDsl};
use ecrm_auth::{
    Principal, PrincipalKind, Scopes, StaticTrust, TrustSnapshot, Verifier, VerifierConfig,
};
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::issue_token_request::Grant;
use support::{ADMIN_PASSWORD, Harness, authed};
use tonic::{Code, Status};
use tonic_types::StatusExt;

const ENDED: &str = "the session has ended or is unknown: log in again";

fn password(username: &str, password: &str) -> Grant {
    Grant::OperatorPassword(pb::OperatorPassword {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

fn client(client_id: &str, secret: &str) -> Grant {
    Grant::ClientCredentials(pb::ClientCredentials {
        client_id: client_id.to_owned(),
        client_secret: secret.to_owned(),
    })
}

/// A login with `grant` that starts a session: its refresh token.
async fn start_session(harness: &Harness, grant: Grant, scope: &str, audience: &str) -> String {
    let response = harness
        .issue_token(grant, &[scope], audience, true)
        .await
        .unwrap();
    assert!(response.session_expires_at.is_some());
    response.refresh_token
}

fn assert_ended(result: Result<pb::IssueTokenResponse, Status>) {
    let status = result.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, ENDED)
    );
}

/// Verifies `token` as the service `audience` would, with the keys the identity service
/// publishes.
async fn verify_at(harness: &Harness, audience: &str, token: &str) -> Principal {
    let jwks = harness
        .tokens()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let trust = StaticTrust::new(TrustSnapshot {
        keys: jwks
            .keys
            .into_iter()
            .map(|key| (key.kid, key.ed25519_public_key))
            .collect(),
        ..TrustSnapshot::default()
    });
    let verifier = Verifier::new(VerifierConfig::new("ecrm-identity", audience), trust);
    verifier.refresh().await.unwrap();
    verifier.verify(token).unwrap()
}

/// Runs `statement` on the test database as its admin, returning the first column of each row
/// as text.
async fn sql(harness: &Harness, statement: &'static str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let admin_url = harness.database.admin_url();
    tokio::task::spawn_blocking(move || {
        let mut conn = diesel::PgConnection::establish(admin_url.expose()).unwrap();
        diesel::sql_query(statement)
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|row| row.value)
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_password_login_starts_a_session_whose_refresh_token_issues_tokens_for_other_audiences() {
    let harness = Harness::start().await;
    let login = harness
        .issue_token(
            password("admin", ADMIN_PASSWORD),
            &["identity.admin"],
            "identity",
            true,
        )
        .await
        .unwrap();
    assert!(login.refresh_token.starts_with("ecrm_rt_"));
    let until = login.session_expires_at.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!((12 * 3600 - 60..=12 * 3600).contains(&until), "{until}");

    // Later, without the password: another service, another scope.
    let refreshed = harness
        .refresh(
            &login.refresh_token,
            &["profiles.read", "consent.read"],
            "profiles",
        )
        .await
        .unwrap();
    assert_eq!(refreshed.scopes, ["profiles.read", "consent.read"]);
    assert!(refreshed.refresh_token.is_empty());
    assert!(refreshed.session_expires_at.is_none());
    assert_ne!(refreshed.jti, login.jti);

    let principal = verify_at(&harness, "profiles", &refreshed.access_token).await;
    let admin = harness.claims_of(&login.access_token);
    assert_eq!(principal.subject, admin.sub);
    assert_eq!(principal.kind, PrincipalKind::Operator);
    assert_eq!(principal.partner_id, None);
    assert_eq!(
        principal.scopes,
        Scopes::from_claim("profiles.read consent.read")
    );
    assert_eq!(principal.token_id, refreshed.jti);
    let claims = harness.claims_of(&refreshed.access_token);
    assert_eq!(claims.exp - claims.iat, 15 * 60);

    // The refresh token is reusable until the session ends.
    let again = harness
        .refresh(&login.refresh_token, &["identity.admin"], "identity")
        .await
        .unwrap();
    assert!(harness.call_with(&again.access_token).await.is_ok());
}

#[tokio::test]
async fn a_partner_session_keeps_its_partner_id_in_refreshed_tokens() {
    let harness = Harness::start().await;
    let (partner, secret) = harness
        .create_account(
            pb::PrincipalKind::Partner,
            "air-example",
            &["profiles.read", "profiles.write"],
        )
        .await;
    let refresh_token = start_session(
        &harness,
        client(&partner.client_id, &secret),
        "profiles.read",
        "profiles",
    )
    .await;

    let refreshed = harness
        .refresh(&refresh_token, &["profiles.write"], "profiles")
        .await
        .unwrap();
    let principal = verify_at(&harness, "profiles", &refreshed.access_token).await;
    assert_eq!(principal.subject, partner.id);
    assert_eq!(principal.kind, PrincipalKind::Partner);
    assert_eq!(principal.partner_id.as_deref(), Some("air-example"));
    assert_eq!(principal.scopes, Scopes::from_claim("profiles.write"));
}

#[tokio::test]
async fn an_ended_session_refreshes_nothing_and_ends_only_once() {
    let harness = Harness::start().await;
    let refresh_token = start_session(
        &harness,
        password("admin", ADMIN_PASSWORD),
        "identity.admin",
        "identity",
    )
    .await;
    let before = harness
        .refresh(&refresh_token, &["identity.admin"], "identity")
        .await
        .unwrap();

    assert!(harness.end_session(&refresh_token).await.unwrap());
    assert_ended(
        harness
            .refresh(&refresh_token, &["identity.admin"], "identity")
            .await,
    );
    assert!(!harness.end_session(&refresh_token).await.unwrap());
    // Tokens it issued before live on until they expire.
    assert!(harness.call_with(&before.access_token).await.is_ok());

    // An unknown or malformed refresh token gets the same answer as an ended one.
    for unknown in [
        "ecrm_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "garbage",
    ] {
        assert_ended(
            harness
                .refresh(unknown, &["identity.admin"], "identity")
                .await,
        );
        assert!(!harness.end_session(unknown).await.unwrap());
    }
}

#[tokio::test]
async fn an_expired_session_refreshes_nothing() {
    let harness = Harness::start_with(|config| ecrm_identity::IdentityConfig {
        session_lifetime: Duration::from_secs(1),
        ..config
    })
    .await;
    let refresh_token = start_session(
        &harness,
        password("admin", ADMIN_PASSWORD),
        "identity.admin",
        "identity",
    )
    .await;
    assert!(
        harness
            .refresh(&refresh_token, &["identity.admin"], "identity")
            .await
            .is_ok()
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_ended(
        harness
            .refresh(&refresh_token, &["identity.admin"], "identity")
            .await,
    );
    assert!(!harness.end_session(&refresh_token).await.unwrap());
}

#[tokio::test]
async fn a_new_password_ends_the_operators_sessions() {
    let harness = Harness::start().await;
    harness
        .create_operator(
            "officer",
            "first-password-of-officer",
            pb::OperatorRole::ComplianceOfficer,
        )
        .await;
    let refresh_token = start_session(
        &harness,
        password("officer", "first-password-of-officer"),
        "dsr.submit",
        "consent",
    )
    .await;

    harness
        .operators()
        .set_password(authed(
            pb::SetPasswordRequest {
                operator: "officer".to_owned(),
                password: "second-password-of-officer".to_owned(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();

    assert_ended(
        harness
            .refresh(&refresh_token, &["dsr.submit"], "consent")
            .await,
    );
    // Logging in again with the new password starts a working session.
    let new_session = start_session(
        &harness,
        password("officer", "second-password-of-officer"),
        "dsr.submit",
        "consent",
    )
    .await;
    assert!(
        harness
            .refresh(&new_session, &["dsr.submit"], "consent")
            .await
            .is_ok()
    );

    // A password changed where sessions were not ended (a replica of an earlier version, during
    // a rolling upgrade): sessions started before the change are refused all the same.
    sql(
        &harness,
        "UPDATE identity.operators SET password_changed_at = now() WHERE username = 'officer' \
         RETURNING id::text AS value",
    )
    .await;
    assert_ended(
        harness
            .refresh(&new_session, &["dsr.submit"], "consent")
            .await,
    );
}

#[tokio::test]
async fn disabling_an_operator_or_a_service_account_ends_their_sessions() {
    let harness = Harness::start().await;
    let operator = harness
        .create_operator(
            "marketer",
            "password-of-the-marketer",
            pb::OperatorRole::Marketer,
        )
        .await;
    let operator_session = start_session(
        &harness,
        password("marketer", "password-of-the-marketer"),
        "segments.read",
        "segmentation",
    )
    .await;
    let (account, secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["events.write"])
        .await;
    let account_session = start_session(
        &harness,
        client(&account.client_id, &secret),
        "events.write",
        "profiles",
    )
    .await;

    harness
        .operators()
        .disable_operator(authed(
            pb::DisableOperatorRequest {
                operator: operator.id.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    harness
        .accounts()
        .disable_service_account(authed(
            pb::DisableServiceAccountRequest {
                id: account.id.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();

    assert_ended(
        harness
            .refresh(&operator_session, &["segments.read"], "segmentation")
            .await,
    );
    assert_ended(
        harness
            .refresh(&account_session, &["events.write"], "profiles")
            .await,
    );
    // Ended in the store too, not only refused.
    let live = sql(
        &harness,
        "SELECT principal_id::text AS value FROM identity.sessions WHERE ended_at IS NULL",
    )
    .await;
    assert!(!live.contains(&operator.id), "{live:?}");
    assert!(!live.contains(&account.id), "{live:?}");
}

#[tokio::test]
async fn a_refresh_gets_only_scopes_the_principal_holds_now() {
    let harness = Harness::start().await;
    harness
        .create_operator(
            "officer",
            "password-of-the-officer",
            pb::OperatorRole::ComplianceOfficer,
        )
        .await;
    let refresh_token = start_session(
        &harness,
        password("officer", "password-of-the-officer"),
        "dsr.manage",
        "consent",
    )
    .await;

    // Never granted to a compliance officer.
    let never = harness
        .refresh(&refresh_token, &["segments.write"], "segmentation")
        .await
        .unwrap_err();
    assert_eq!(never.code(), Code::PermissionDenied);
    assert!(never.message().contains("segments.write"), "{never:?}");

    // The officer becomes a marketer: the next refresh holds the marketer's scopes only.
    sql(
        &harness,
        "UPDATE identity.operators SET roles = '{marketer}' WHERE username = 'officer' \
         RETURNING id::text AS value",
    )
    .await;
    let no_longer = harness
        .refresh(&refresh_token, &["dsr.manage"], "consent")
        .await
        .unwrap_err();
    assert_eq!(no_longer.code(), Code::PermissionDenied);
    assert!(no_longer.message().contains("dsr.manage"), "{no_longer:?}");
    let now_granted = harness
        .refresh(&refresh_token, &["segments.write"], "segmentation")
        .await
        .unwrap();
    assert_eq!(now_granted.scopes, ["segments.write"]);
}

#[tokio::test]
async fn a_refresh_token_cannot_start_another_session_and_must_be_given() {
    let harness = Harness::start().await;
    let refresh_token = start_session(
        &harness,
        password("admin", ADMIN_PASSWORD),
        "identity.admin",
        "identity",
    )
    .await;

    let cases = [
        (
            harness
                .issue_token(
                    Grant::RefreshToken(refresh_token.clone()),
                    &["identity.admin"],
                    "identity",
                    true,
                )
                .await,
            "start_session",
        ),
        (
            harness.refresh("", &["identity.admin"], "identity").await,
            "refresh_token",
        ),
    ];
    for (result, field) in cases {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        let details = status.get_error_details();
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            field
        );
    }
    let empty = harness.end_session("").await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    // Neither call spent the session.
    assert!(
        harness
            .refresh(&refresh_token, &["identity.admin"], "identity")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_store_never_holds_a_refresh_token_in_clear() {
    let harness = Harness::start().await;
    let refresh_token = start_session(
        &harness,
        password("admin", ADMIN_PASSWORD),
        "identity.admin",
        "identity",
    )
    .await;
    harness
        .refresh(&refresh_token, &["identity.admin"], "identity")
        .await
        .unwrap();
    let random_part = refresh_token.strip_prefix("ecrm_rt_").unwrap();

    // Every column of every row, as text (the digest as hex).
    let rows = sql(
        &harness,
        "SELECT row_to_json(s)::text AS value FROM identity.sessions s",
    )
    .await;
    assert_eq!(rows.len(), 1);
    for row in &rows {
        assert!(!row.contains(random_part), "{row}");
    }
    let digests = sql(
        &harness,
        "SELECT encode(token_digest, 'hex') AS value FROM identity.sessions",
    )
    .await;
    let expected = ring::digest::digest(&ring::digest::SHA256, refresh_token.as_bytes());
    let expected: String = expected
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(digests, [expected]);
}

#[tokio::test]
async fn a_login_may_start_a_session_without_a_token_but_a_plain_login_needs_a_scope() {
    let harness = Harness::start().await;
    let login = harness
        .issue_token(password("admin", ADMIN_PASSWORD), &[], "identity", true)
        .await
        .unwrap();
    assert!(login.access_token.is_empty() && login.jti.is_empty());
    assert!(login.expires_at.is_none() && login.scopes.is_empty());
    assert!(login.refresh_token.starts_with("ecrm_rt_"));
    let refreshed = harness
        .refresh(&login.refresh_token, &["identity.admin"], "identity")
        .await
        .unwrap();
    assert!(harness.call_with(&refreshed.access_token).await.is_ok());

    let refused = harness
        .issue_token(password("admin", ADMIN_PASSWORD), &[], "identity", false)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        refused.get_details_bad_request().unwrap().field_violations[0].field,
        "scopes"
    );
}
