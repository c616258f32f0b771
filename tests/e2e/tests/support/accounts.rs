//! Callers of the suite with real tokens from identity: the first operator logging in with
//! its password, and service accounts created through identity's API.

use std::collections::HashMap;

use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::service_accounts_client::ServiceAccountsClient;
use ecrm_proto::ecrm::identity::v1::tokens_client::TokensClient;
use ecrm_suite::Member;
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// Every scope an admin operator holds: all but `privacy.execute`, which is for the suite's
/// own data subject request orchestrator.
const ADMIN_SCOPES: [&str; 12] = [
    "identity.admin",
    "profiles.read",
    "profiles.write",
    "events.write",
    "consent.read",
    "consent.write",
    "dsr.submit",
    "dsr.manage",
    "segments.read",
    "segments.write",
    "outbound.send",
    "outbound.manage",
];

/// The service whose calls a scope allows: a token is for one audience.
fn audience(scope: &str) -> Member {
    match scope.split_once('.').map(|(area, _)| area) {
        Some("identity") => Member::Identity,
        Some("profiles" | "events") => Member::Profiles,
        Some("consent" | "dsr") => Member::Consent,
        Some("segments") => Member::Segmentation,
        Some("outbound") => Member::Outbound,
        _ => panic!("no audience for scope {scope}"),
    }
}

enum Grant {
    Operator { username: String, password: String },
    Client { client_id: String, secret: String },
}

/// Someone calling the suite: asks identity for a token per service on first use, with every
/// scope it holds for that service, and keeps it.
pub struct Caller {
    identity: Channel,
    grant: Grant,
    scopes: Vec<String>,
    tokens: Mutex<HashMap<Member, String>>,
}

impl Caller {
    /// An admin operator logging in with its password at `identity`.
    pub fn operator(identity: Channel, username: &str, password: &str) -> Self {
        Self {
            identity,
            grant: Grant::Operator {
                username: username.to_owned(),
                password: password.to_owned(),
            },
            scopes: ADMIN_SCOPES.map(str::to_owned).to_vec(),
            tokens: Mutex::default(),
        }
    }

    /// Creates a service account at identity, as an admin does, and returns it as a caller
    /// holding `scopes`.
    pub async fn create_account(
        &self,
        display_name: &str,
        kind: pb::PrincipalKind,
        partner_id: &str,
        scopes: &[&str],
    ) -> Caller {
        let created = ServiceAccountsClient::new(self.identity.clone())
            .create_service_account(authorized(
                &self.token(Member::Identity).await,
                pb::CreateServiceAccountRequest {
                    display_name: display_name.to_owned(),
                    kind: kind.into(),
                    partner_id: partner_id.to_owned(),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    secret_expires_at: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let account = created.account.unwrap();
        assert_eq!(account.kind(), kind);
        super::logs::forbid(created.client_secret.clone());
        Caller {
            identity: self.identity.clone(),
            grant: Grant::Client {
                client_id: account.client_id,
                secret: created.client_secret,
            },
            scopes: account.scopes,
            tokens: Mutex::default(),
        }
    }

    /// This caller, asking identity for its tokens over `identity` instead (its own TLS).
    pub fn via(self, identity: Channel) -> Self {
        Self { identity, ..self }
    }

    /// A token for `member` with every scope this caller holds there.
    pub async fn token(&self, member: Member) -> String {
        let mut tokens = self.tokens.lock().await;
        if let Some(token) = tokens.get(&member) {
            return token.clone();
        }
        let grant = match &self.grant {
            Grant::Operator { username, password } => {
                pb::issue_token_request::Grant::OperatorPassword(pb::OperatorPassword {
                    username: username.clone(),
                    password: password.clone(),
                })
            }
            Grant::Client { client_id, secret } => {
                pb::issue_token_request::Grant::ClientCredentials(pb::ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: secret.clone(),
                })
            }
        };
        let scopes: Vec<String> = self
            .scopes
            .iter()
            .filter(|scope| audience(scope) == member)
            .cloned()
            .collect();
        assert!(
            !scopes.is_empty(),
            "no scope of this caller is for {member}"
        );
        let issued = TokensClient::new(self.identity.clone())
            .issue_token(pb::IssueTokenRequest {
                grant: Some(grant),
                scopes,
                audience: member.name().to_owned(),
                start_session: false,
            })
            .await
            .unwrap_or_else(|status| panic!("no token for {member}: {status:?}"))
            .into_inner();
        super::logs::forbid(issued.access_token.clone());
        tokens.insert(member, issued.access_token.clone());
        issued.access_token
    }
}

/// `message` with `token` as its bearer credential.
pub fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Like [`authorized`], for a read of personal data declaring its purpose.
pub fn reading<T>(token: &str, purpose: &str, message: T) -> tonic::Request<T> {
    let mut request = authorized(token, message);
    request
        .metadata_mut()
        .insert("x-ecrm-purpose", purpose.parse().unwrap());
    request
}
