//! The typed client against running services: tokens per method scope, renewal of a refused
//! token, and retries of idempotent calls only.

mod support;

use std::time::Duration;

use ecrm_client::proto::common::v1::{Identifier, IdentifierKind, SubjectRef, subject_ref};
use ecrm_client::proto::identity::v1 as pb;
use ecrm_client::proto::profiles::v1::{
    AttributeDefinition, AttributeType, DefineAttributeRequest, GetProfileRequest,
    ListAttributeDefinitionsRequest, NewIdentifier, UpsertProfileRequest,
};
use ecrm_client::{Client, Credentials, RetryPolicy, Service, for_purpose};
use ecrm_platform::config::ShutdownConfig;
use support::{AUTH_REFRESH, Suite, jti_of};
use tonic::Code;

fn email(address: &str) -> Identifier {
    Identifier {
        kind: IdentifierKind::Email.into(),
        value: address.to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_call_carries_a_token_for_exactly_the_scope_its_method_needs() {
    let suite = Suite::start().await;
    let (client_id, secret) = suite
        .service_account(
            pb::PrincipalKind::Internal,
            "",
            &["profiles.read", "profiles.write"],
        )
        .await;
    let client = Client::connect(
        suite.endpoints(),
        Credentials::service_account(client_id, secret),
    )
    .unwrap();

    let created = client
        .profiles()
        .unwrap()
        .upsert_profile(UpsertProfileRequest {
            identifiers: vec![NewIdentifier {
                identifier: Some(email("ada@example.com")),
                ..Default::default()
            }],
            source: "web_shop".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let subject_id = created.profile.unwrap().subject_id;
    let read = client
        .profiles()
        .unwrap()
        .get_profile(for_purpose(
            GetProfileRequest {
                subject: Some(SubjectRef {
                    subject: Some(subject_ref::Subject::SubjectId(subject_id.clone())),
                }),
            },
            "customer_service",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.profile.unwrap().subject_id, subject_id);

    let cached = client.tokens().cached().await;
    let held: Vec<(&str, Vec<String>)> = cached
        .iter()
        .map(|token| (token.audience.as_str(), token.scopes.clone()))
        .collect();
    assert_eq!(
        held,
        [
            ("profiles", vec!["profiles.read".to_owned()]),
            ("profiles", vec!["profiles.write".to_owned()]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scope_the_principal_lacks_is_refused_by_identity_as_permission_denied() {
    let suite = Suite::start().await;
    let (client_id, secret) = suite
        .service_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;
    let client = Client::connect(
        suite.endpoints(),
        Credentials::service_account(client_id, secret),
    )
    .unwrap();
    let refused = client
        .profiles()
        .unwrap()
        .define_attribute(DefineAttributeRequest {
            definition: Some(AttributeDefinition {
                key: "favourite_colour".to_owned(),
                r#type: AttributeType::String.into(),
                description: String::new(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let wrong = Client::connect(
        suite.endpoints(),
        Credentials::operator("admin", "not-the-password"),
    )
    .unwrap()
    .profiles()
    .unwrap()
    .list_attribute_definitions(ListAttributeDefinitionsRequest {})
    .await
    .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_replaced_and_the_call_goes_through() {
    let suite = Suite::start().await;
    let admin = suite.admin();
    let profiles = || admin.profiles().unwrap();
    profiles()
        .list_attribute_definitions(ListAttributeDefinitionsRequest {})
        .await
        .unwrap();
    let first = admin.tokens().cached().await;
    let first = first.iter().find(|t| t.audience == "profiles").unwrap();

    // RevokeToken needs any valid token at identity: one is obtained by a call needing a scope.
    admin
        .service_accounts()
        .unwrap()
        .list_service_accounts(pb::ListServiceAccountsRequest::default())
        .await
        .unwrap();
    admin
        .identity_tokens()
        .unwrap()
        .revoke_token(pb::RevokeTokenRequest {
            jti: jti_of(&first.access_token),
        })
        .await
        .unwrap();
    // Once profiles has learnt of the revocation, the old token is refused there: the client
    // gets a new one and the call still succeeds.
    tokio::time::sleep(AUTH_REFRESH * 5).await;
    profiles()
        .list_attribute_definitions(ListAttributeDefinitionsRequest {})
        .await
        .unwrap();
    let now = admin.tokens().cached().await;
    let now = now.iter().find(|t| t.audience == "profiles").unwrap();
    assert_ne!(now.access_token, first.access_token);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_call_waits_for_a_service_coming_up_and_a_write_is_not_sent_twice() {
    let suite = Suite::identity_only().await;
    // A port nothing listens on yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::connect(
        suite
            .endpoints()
            .with(Service::Profiles, format!("http://{addr}")),
        Credentials::operator("admin", support::ADMIN_PASSWORD),
    )
    .unwrap()
    .with_retry(RetryPolicy {
        max_attempts: 30,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
    });

    let write = client
        .profiles()
        .unwrap()
        .define_attribute(DefineAttributeRequest {
            definition: Some(AttributeDefinition {
                key: "favourite_colour".to_owned(),
                r#type: AttributeType::String.into(),
                description: String::new(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(write.code(), Code::Unavailable, "{write:?}");

    let routes = suite.profiles_routes().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let late = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            ecrm_platform::RunningServer::start(
                listener,
                routes,
                ShutdownConfig {
                    grace: Duration::ZERO,
                    drain_timeout: Duration::from_secs(1),
                },
                shutdown,
            )
            .await
            .unwrap()
        }
    });
    let read = client
        .profiles()
        .unwrap()
        .list_attribute_definitions(ListAttributeDefinitionsRequest {})
        .await
        .unwrap()
        .into_inner();
    // The write refused earlier never reached the service.
    assert!(read.definitions.is_empty(), "{read:?}");
    let server = late.await.unwrap();
    shutdown.cancel();
    server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_issues_tokens_without_the_password_until_it_is_ended() {
    let suite = Suite::start().await;
    let login = suite.admin();
    let session = login.tokens().start_session("identity", &[]).await.unwrap();
    assert!(login.tokens().cached().await.is_empty());
    assert!(session.expires_at.is_some());

    let client = Client::connect(
        suite.endpoints(),
        Credentials::session(session.refresh_token),
    )
    .unwrap();
    let list = || async {
        client
            .profiles()
            .unwrap()
            .list_attribute_definitions(ListAttributeDefinitionsRequest {})
            .await
    };
    list().await.unwrap();
    assert!(client.tokens().end_session().await.unwrap());
    let refused = list().await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_of_one_account_logging_in_at_once_all_get_through() {
    let suite = Suite::start().await;
    let (client_id, secret) = suite
        .service_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
        .await;
    // Identity checks at most five logins of one account from one address at a time and turns
    // the others away for a second: the client waits that second and logs in again.
    let clients: Vec<Client> = (0..8)
        .map(|_| {
            Client::connect(
                suite.endpoints(),
                Credentials::service_account(client_id.clone(), secret.clone()),
            )
            .unwrap()
        })
        .collect();
    let calls = clients.iter().map(|client| async move {
        client
            .profiles()
            .unwrap()
            .list_attribute_definitions(ListAttributeDefinitionsRequest {})
            .await
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
}
