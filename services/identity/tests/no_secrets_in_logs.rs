//! No secret, password or token reaches a log line: the whole flow runs under a capturing
//! subscriber at debug level, then every secret is searched for in what was written. Its own
//! test binary, because the subscriber is process-wide.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use ecrm_proto::ecrm::identity::v1 as pb;
use support::{ADMIN_PASSWORD, Harness, authed};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_password_or_token_appears_in_any_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let harness = Harness::start().await;
    let mut secrets = vec![ADMIN_PASSWORD.to_owned(), harness.admin_token.clone()];

    let (account, client_secret) = harness
        .create_account(
            pb::PrincipalKind::Partner,
            "air-example",
            &["profiles.read"],
        )
        .await;
    secrets.push(client_secret.clone());
    let added = harness
        .accounts()
        .add_secret(authed(
            pb::AddSecretRequest {
                id: account.id.clone(),
                expires_at: None,
            },
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    secrets.push(added.client_secret.clone());
    let token = harness
        .client_token(
            &account.client_id,
            &client_secret,
            &["profiles.read"],
            "profiles",
        )
        .await
        .unwrap();
    secrets.push(token.access_token.clone());

    let operator_password = "operator-password-to-hide";
    let changed_password = "changed-password-to-hide";
    secrets.extend([operator_password.to_owned(), changed_password.to_owned()]);
    harness
        .create_operator(
            "officer",
            operator_password,
            pb::OperatorRole::ComplianceOfficer,
        )
        .await;
    harness
        .operators()
        .set_password(authed(
            pb::SetPasswordRequest {
                operator: "officer".to_owned(),
                password: changed_password.to_owned(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    let officer = harness
        .login("officer", changed_password, &["dsr.submit"], "identity")
        .await
        .unwrap();
    secrets.push(officer.access_token.clone());

    // A session: started, refreshed, ended.
    let session = harness
        .tokens()
        .issue_token(pb::IssueTokenRequest {
            grant: Some(pb::issue_token_request::Grant::OperatorPassword(
                pb::OperatorPassword {
                    username: "officer".to_owned(),
                    password: changed_password.to_owned(),
                },
            )),
            scopes: vec!["dsr.submit".to_owned()],
            audience: "consent".to_owned(),
            start_session: true,
        })
        .await
        .unwrap()
        .into_inner();
    secrets.extend([session.access_token, session.refresh_token.clone()]);
    let refreshed = harness
        .tokens()
        .issue_token(pb::IssueTokenRequest {
            grant: Some(pb::issue_token_request::Grant::RefreshToken(
                session.refresh_token.clone(),
            )),
            scopes: vec!["consent.read".to_owned()],
            audience: "consent".to_owned(),
            start_session: false,
        })
        .await
        .unwrap()
        .into_inner();
    secrets.push(refreshed.access_token);
    harness
        .tokens()
        .end_session(pb::EndSessionRequest {
            refresh_token: session.refresh_token.clone(),
        })
        .await
        .unwrap();
    // The refresh token of an ended session is refused, and still not logged.
    let _ = harness
        .tokens()
        .issue_token(pb::IssueTokenRequest {
            grant: Some(pb::issue_token_request::Grant::RefreshToken(
                session.refresh_token,
            )),
            scopes: vec!["consent.read".to_owned()],
            audience: "consent".to_owned(),
            start_session: false,
        })
        .await;

    // Failures are logged too: wrong secrets until blocked, refused tokens.
    let wrong_secrets: Vec<String> = (0..6).map(|i| format!("ecrm_sk_wrong_guess_{i}")).collect();
    for wrong in &wrong_secrets {
        let _ = harness
            .client_token(&account.client_id, wrong, &["profiles.read"], "profiles")
            .await;
    }
    secrets.extend(wrong_secrets);
    let _ = harness.call_with(&officer.access_token).await;
    let _ = harness.call_with(&token.access_token).await;
    harness
        .tokens()
        .revoke_token(authed(
            pb::RevokeTokenRequest {
                jti: officer.jti.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    tokio::time::sleep(support::REFRESH * 2).await;
    let _ = harness.call_with(&officer.access_token).await;
    drop(harness);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("token issued"),
        "the flow was not logged at all"
    );
    assert!(logs.contains("call refused"), "refusals were not logged");
    assert!(
        logs.contains("session started") && logs.contains("session ended"),
        "sessions were not logged"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        // Tokens must not appear in part either: their signature alone would identify them.
        if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(
                !logs.contains(signature),
                "a token signature reached the logs"
            );
        }
    }
}
