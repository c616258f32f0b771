//! Managing service accounts and operators through the API.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use ecrm_proto::ecrm::common::v1::PageRequest;
use ecrm_proto::ecrm::identity::v1 as pb;
use support::{Harness, authed};
use tonic::Code;
use tonic_types::StatusExt;

fn field_of(status: &tonic::Status) -> String {
    let details = status.get_error_details();
    details.bad_request().unwrap().field_violations[0]
        .field
        .clone()
}

#[tokio::test]
async fn accounts_are_found_by_id_or_client_id_and_listed_in_pages() {
    let harness = Harness::start().await;
    let mut created = Vec::new();
    for partner in ["air-a", "air-b", "air-c"] {
        created.push(
            harness
                .create_account(pb::PrincipalKind::Partner, partner, &["profiles.read"])
                .await
                .0,
        );
    }

    for reference in [&created[1].id, &created[1].client_id] {
        let found = harness
            .accounts()
            .get_service_account(authed(
                pb::GetServiceAccountRequest {
                    id: reference.clone(),
                },
                &harness.admin_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .account
            .unwrap();
        assert_eq!(found.partner_id, "air-b");
        assert_eq!(found.secrets.len(), 1);
    }
    let missing = harness
        .accounts()
        .get_service_account(authed(
            pb::GetServiceAccountRequest {
                id: "ecrm_ci_nobody".to_owned(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = harness
            .accounts()
            .list_service_accounts(authed(
                pb::ListServiceAccountsRequest {
                    page: Some(PageRequest {
                        page_size: 2,
                        page_token: token.clone(),
                    }),
                },
                &harness.admin_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.accounts.len() <= 2);
        seen.extend(page.accounts.into_iter().map(|a| a.id));
        token = page.page.unwrap().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        seen,
        created.iter().map(|a| a.id.clone()).collect::<Vec<_>>()
    );

    let too_big = harness
        .accounts()
        .list_service_accounts(authed(
            pb::ListServiceAccountsRequest {
                page: Some(PageRequest {
                    page_size: 10_000,
                    page_token: String::new(),
                }),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (too_big.code(), field_of(&too_big)),
        (Code::InvalidArgument, "page.page_size".to_owned())
    );
}

#[tokio::test]
async fn a_secret_rotates_without_downtime_and_at_most_two_are_active() {
    let harness = Harness::start().await;
    let (account, old_secret) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;

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
    // Both work during the rotation.
    for secret in [&old_secret, &added.client_secret] {
        assert!(
            harness
                .client_token(&account.client_id, secret, &["profiles.read"], "profiles")
                .await
                .is_ok()
        );
    }
    let third = harness
        .accounts()
        .add_secret(authed(
            pb::AddSecretRequest {
                id: account.id.clone(),
                expires_at: None,
            },
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(third.code(), Code::FailedPrecondition);

    let old_id = account.secrets[0].secret_id.clone();
    harness
        .accounts()
        .remove_secret(authed(
            pb::RemoveSecretRequest {
                id: account.id.clone(),
                secret_id: old_id.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    let refused = harness
        .client_token(
            &account.client_id,
            &old_secret,
            &["profiles.read"],
            "profiles",
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        harness
            .client_token(
                &account.client_id,
                &added.client_secret,
                &["profiles.read"],
                "profiles"
            )
            .await
            .is_ok()
    );

    let again = harness
        .accounts()
        .remove_secret(authed(
            pb::RemoveSecretRequest {
                id: account.id,
                secret_id: old_id,
            },
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_account_requests_name_the_field() {
    let harness = Harness::start().await;
    let request = |kind: pb::PrincipalKind, partner: &str, scopes: &[&str], name: &str| {
        pb::CreateServiceAccountRequest {
            display_name: name.to_owned(),
            kind: kind.into(),
            partner_id: partner.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            secret_expires_at: None,
        }
    };
    let cases = [
        (
            request(pb::PrincipalKind::Partner, "", &[], "no partner"),
            "partner_id",
        ),
        (
            request(
                pb::PrincipalKind::Partner,
                "Air Example!",
                &[],
                "bad partner",
            ),
            "partner_id",
        ),
        (
            request(
                pb::PrincipalKind::Internal,
                "air-a",
                &[],
                "internal with partner",
            ),
            "partner_id",
        ),
        (
            request(pb::PrincipalKind::Operator, "", &[], "operator account"),
            "kind",
        ),
        (
            request(pb::PrincipalKind::Unspecified, "", &[], "no kind"),
            "kind",
        ),
        (
            request(
                pb::PrincipalKind::Internal,
                "",
                &["profiles.delete"],
                "unknown scope",
            ),
            "scopes",
        ),
        (
            request(pb::PrincipalKind::Internal, "", &[], "  "),
            "display_name",
        ),
        (
            pb::CreateServiceAccountRequest {
                secret_expires_at: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
                ..request(pb::PrincipalKind::Internal, "", &[], "expired secret")
            },
            "secret_expires_at",
        ),
    ];
    for (request, field) in cases {
        let status = harness
            .accounts()
            .create_service_account(authed(request, &harness.admin_token))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), field_of(&status)),
            (Code::InvalidArgument, field.to_owned())
        );
    }
    // Nothing was stored by the refused requests.
    let listed = harness
        .accounts()
        .list_service_accounts(authed(
            pb::ListServiceAccountsRequest { page: None },
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.accounts.is_empty());
}

#[tokio::test]
async fn operators_are_created_listed_and_change_passwords() {
    let harness = Harness::start().await;
    let create = |username: &str, password: &str| pb::CreateOperatorRequest {
        username: username.to_owned(),
        password: password.to_owned(),
        roles: vec![pb::OperatorRole::Marketer.into()],
    };

    let short = harness
        .operators()
        .create_operator(authed(create("mia", "short"), &harness.admin_token))
        .await
        .unwrap_err();
    assert_eq!(
        (short.code(), field_of(&short)),
        (Code::InvalidArgument, "password".to_owned())
    );
    let bad_name = harness
        .operators()
        .create_operator(authed(
            create("m i a", "a-long-password"),
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(&bad_name), "username");
    let no_role = harness
        .operators()
        .create_operator(authed(
            pb::CreateOperatorRequest {
                roles: vec![],
                ..create("mia", "a-long-password")
            },
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(&no_role), "roles");

    harness
        .operators()
        .create_operator(authed(
            create("mia", "a-long-password"),
            &harness.admin_token,
        ))
        .await
        .unwrap();
    let twice = harness
        .operators()
        .create_operator(authed(
            create("mia", "another-long-one"),
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);

    let token = harness
        .login(
            "mia",
            "a-long-password",
            &["segments.write"],
            "segmentation",
        )
        .await
        .unwrap();
    assert!(token.scopes.contains(&"segments.write".to_owned()));
    let not_granted = harness
        .login("mia", "a-long-password", &["dsr.manage"], "consent")
        .await
        .unwrap_err();
    assert_eq!(not_granted.code(), Code::PermissionDenied);

    harness
        .operators()
        .set_password(authed(
            pb::SetPasswordRequest {
                operator: "mia".to_owned(),
                password: "a-new-long-password".to_owned(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    assert_eq!(
        harness
            .login("mia", "a-long-password", &["profiles.read"], "identity")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert!(
        harness
            .login("mia", "a-new-long-password", &["profiles.read"], "identity")
            .await
            .is_ok()
    );

    let listed = harness
        .operators()
        .list_operators(authed(
            pb::ListOperatorsRequest { page: None },
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed
        .operators
        .iter()
        .map(|o| o.username.as_str())
        .collect();
    assert_eq!(names, ["admin", "mia"]);

    // A marketer administers nothing.
    let marketer = harness
        .login("mia", "a-new-long-password", &["profiles.read"], "identity")
        .await
        .unwrap();
    let denied = harness
        .operators()
        .create_operator(authed(
            create("eve", "a-long-password"),
            &marketer.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_bootstrap_admin_is_created_once() {
    let harness = Harness::start().await;
    // The harness bootstrapped an admin already: a second bootstrap does nothing.
    assert!(
        harness
            .identity
            .bootstrap_admin(None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn every_down_sql_reverts_its_up_sql() {
    ecrm_testkit::assert_migrations_revert(&ecrm_identity::SERVICE).await;
}

#[tokio::test]
async fn a_secret_stops_working_when_it_expires() {
    let harness = Harness::start().await;
    let (account, lasting) = harness
        .create_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(5);
    let short = harness
        .accounts()
        .add_secret(authed(
            pb::AddSecretRequest {
                id: account.id.clone(),
                expires_at: Some(ecrm_platform::time::to_timestamp(expires_at)),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        harness
            .client_token(
                &account.client_id,
                &short.client_secret,
                &["profiles.read"],
                "profiles"
            )
            .await
            .is_ok()
    );

    tokio::time::sleep(std::time::Duration::from_millis(5500)).await;

    let expired = harness
        .client_token(
            &account.client_id,
            &short.client_secret,
            &["profiles.read"],
            "profiles",
        )
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(
        harness
            .client_token(&account.client_id, &lasting, &["profiles.read"], "profiles")
            .await
            .is_ok()
    );
    // An expired secret no longer counts towards the two active ones.
    let listed = harness
        .accounts()
        .get_service_account(authed(
            pb::GetServiceAccountRequest { id: account.id },
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(listed.secrets.len(), 1);
}

#[tokio::test]
async fn provisioning_an_internal_account_again_replaces_its_secret() {
    let harness = Harness::start().await;
    let scopes: ecrm_auth::Scopes = [ecrm_auth::Scope::ProfilesRead].into_iter().collect();
    let (client_id, first) = harness
        .identity
        .provision_internal_account("suite: profiles", scopes)
        .await
        .unwrap();
    harness
        .client_token(&client_id, first.expose(), &["profiles.read"], "identity")
        .await
        .unwrap();

    let (again, second) = harness
        .identity
        .provision_internal_account("suite: profiles", scopes)
        .await
        .unwrap();
    assert_eq!(again, client_id, "the same account, not a new one");
    let refused = harness
        .client_token(&client_id, first.expose(), &["profiles.read"], "identity")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let token = harness
        .client_token(&client_id, second.expose(), &["profiles.read"], "identity")
        .await
        .unwrap();
    assert!(!token.access_token.is_empty());
    // It holds only the scopes asked for.
    let denied = harness
        .client_token(&client_id, second.expose(), &["identity.admin"], "identity")
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let account = harness
        .accounts()
        .get_service_account(authed(
            pb::GetServiceAccountRequest {
                id: client_id.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(account.secrets.len(), 1);
    assert_eq!(account.kind, i32::from(pb::PrincipalKind::Internal));

    // An operator's decision to disable it stands: provisioning again is refused.
    harness
        .accounts()
        .disable_service_account(authed(
            pb::DisableServiceAccountRequest {
                id: client_id.clone(),
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    let refused = harness
        .identity
        .provision_internal_account("suite: profiles", scopes)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("disabled"), "{refused}");
    let still = harness
        .client_token(&client_id, second.expose(), &["profiles.read"], "identity")
        .await
        .unwrap_err();
    assert_eq!(still.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn references_holding_control_characters_are_refused_naming_the_field() {
    let harness = Harness::start().await;
    let token = &harness.admin_token;
    let reference = "client\u{0}id".to_owned();
    let status = harness
        .accounts()
        .get_service_account(authed(
            pb::GetServiceAccountRequest {
                id: reference.clone(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), field_of(&status)),
        (Code::InvalidArgument, "id".to_owned())
    );
    let status = harness
        .operators()
        .disable_operator(authed(
            pb::DisableOperatorRequest {
                operator: reference.clone(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), field_of(&status)),
        (Code::InvalidArgument, "operator".to_owned())
    );
    let status = harness
        .tokens()
        .revoke_token(authed(pb::RevokeTokenRequest { jti: reference }, token))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), field_of(&status)),
        (Code::InvalidArgument, "jti".to_owned())
    );
}
