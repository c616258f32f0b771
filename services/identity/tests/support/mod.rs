//! A running identity service on its own database, with a bootstrap admin, and helpers to call it.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::sync::Arc;
use std::time::Duration;

use ecrm_auth::Claims;
use ecrm_crypto::{MasterKey, Secret};
use ecrm_identity::{Identity, IdentityConfig, SERVICE};
use ecrm_platform::ServiceContext;
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::issue_token_request::Grant;
use ecrm_proto::ecrm::identity::v1::operators_client::OperatorsClient;
use ecrm_proto::ecrm::identity::v1::service_accounts_client::ServiceAccountsClient;
use ecrm_proto::ecrm::identity::v1::signing_keys_client::SigningKeysClient;
use ecrm_proto::ecrm::identity::v1::tokens_client::TokensClient;
use ecrm_testkit::{TestDatabase, TestServer, start_server};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// The verifiers' refresh interval in these tests: the stated bound for revocations.
pub const REFRESH: Duration = Duration::from_millis(200);
/// How long a next key must be published before it signs, in these tests.
pub const PUBLISH_DELAY: Duration = Duration::from_millis(500);

pub struct Harness {
    pub database: TestDatabase,
    pub server: TestServer,
    pub identity: Identity,
    pub master: Arc<MasterKey>,
    /// The master key as the binary takes it (base64).
    pub master_text: String,
    pub admin_token: String,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn config(master: Arc<MasterKey>) -> IdentityConfig {
    IdentityConfig {
        auth_refresh_interval: REFRESH,
        key_publish_delay: PUBLISH_DELAY,
        ..IdentityConfig::new(master)
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|config| config).await
    }

    pub async fn start_with(adjust: impl FnOnce(IdentityConfig) -> IdentityConfig) -> Self {
        let database = TestDatabase::new(&[&SERVICE]).await;
        let db = database.db(&SERVICE).await.unwrap();
        let (master, master_text) = MasterKey::generate().unwrap();
        let master = Arc::new(master);
        let shutdown = CancellationToken::new();
        let identity = Identity::new(
            ServiceContext::new(db, shutdown.clone()),
            adjust(config(master.clone())),
        )
        .await
        .unwrap();
        identity
            .bootstrap_admin(Some(Secret::new(ADMIN_PASSWORD.to_owned())))
            .await
            .unwrap();
        let server = start_server(identity.routes()).await.unwrap();
        let mut harness = Self {
            database,
            server,
            identity,
            master,
            master_text,
            admin_token: String::new(),
            shutdown,
        };
        harness.admin_token = harness
            .login("admin", ADMIN_PASSWORD, &["identity.admin"], "identity")
            .await
            .unwrap()
            .access_token;
        harness
    }

    pub fn tokens(&self) -> TokensClient<Channel> {
        self.server.client(TokensClient::new)
    }

    pub fn accounts(&self) -> ServiceAccountsClient<Channel> {
        self.server.client(ServiceAccountsClient::new)
    }

    pub fn operators(&self) -> OperatorsClient<Channel> {
        self.server.client(OperatorsClient::new)
    }

    pub fn keys(&self) -> SigningKeysClient<Channel> {
        self.server.client(SigningKeysClient::new)
    }

    pub async fn login(
        &self,
        username: &str,
        password: &str,
        scopes: &[&str],
        audience: &str,
    ) -> Result<pb::IssueTokenResponse, Status> {
        self.issue(
            Grant::OperatorPassword(pb::OperatorPassword {
                username: username.to_owned(),
                password: password.to_owned(),
            }),
            scopes,
            audience,
        )
        .await
    }

    pub async fn client_token(
        &self,
        client_id: &str,
        secret: &str,
        scopes: &[&str],
        audience: &str,
    ) -> Result<pb::IssueTokenResponse, Status> {
        self.issue(
            Grant::ClientCredentials(pb::ClientCredentials {
                client_id: client_id.to_owned(),
                client_secret: secret.to_owned(),
            }),
            scopes,
            audience,
        )
        .await
    }

    async fn issue(
        &self,
        grant: Grant,
        scopes: &[&str],
        audience: &str,
    ) -> Result<pb::IssueTokenResponse, Status> {
        self.issue_token(grant, scopes, audience, false).await
    }

    /// `IssueToken` with `grant`, starting a session when asked.
    pub async fn issue_token(
        &self,
        grant: Grant,
        scopes: &[&str],
        audience: &str,
        start_session: bool,
    ) -> Result<pb::IssueTokenResponse, Status> {
        self.tokens()
            .issue_token(pb::IssueTokenRequest {
                grant: Some(grant),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                audience: audience.to_owned(),
                start_session,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// A token from a session's refresh token.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        scopes: &[&str],
        audience: &str,
    ) -> Result<pb::IssueTokenResponse, Status> {
        let grant = Grant::RefreshToken(refresh_token.to_owned());
        self.issue_token(grant, scopes, audience, false).await
    }

    /// `EndSession`: whether it ended the session.
    pub async fn end_session(&self, refresh_token: &str) -> Result<bool, Status> {
        self.tokens()
            .end_session(pb::EndSessionRequest {
                refresh_token: refresh_token.to_owned(),
            })
            .await
            .map(|response| response.into_inner().ended)
    }

    /// Creates a service account as admin; returns it with its first secret.
    pub async fn create_account(
        &self,
        kind: pb::PrincipalKind,
        partner_id: &str,
        scopes: &[&str],
    ) -> (pb::ServiceAccount, String) {
        let response = self
            .accounts()
            .create_service_account(authed(
                pb::CreateServiceAccountRequest {
                    display_name: format!("test {partner_id}"),
                    kind: kind.into(),
                    partner_id: partner_id.to_owned(),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    secret_expires_at: None,
                },
                &self.admin_token,
            ))
            .await
            .unwrap()
            .into_inner();
        (response.account.unwrap(), response.client_secret)
    }

    /// Creates an operator as admin.
    pub async fn create_operator(
        &self,
        username: &str,
        password: &str,
        role: pb::OperatorRole,
    ) -> pb::Operator {
        self.operators()
            .create_operator(authed(
                pb::CreateOperatorRequest {
                    username: username.to_owned(),
                    password: password.to_owned(),
                    roles: vec![role.into()],
                },
                &self.admin_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .operator
            .unwrap()
    }

    /// `ListSigningKeys` with `token`: a call that needs identity.admin and no data.
    pub async fn call_with(&self, token: &str) -> Result<pb::ListSigningKeysResponse, Status> {
        self.keys()
            .list_signing_keys(authed(pb::ListSigningKeysRequest {}, token))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Signs `claims` with the service's active key, as the service itself would.
    pub async fn sign_as_service(&self, claims: &Claims) -> String {
        let keys = self.call_with(&self.admin_token).await.unwrap().keys;
        let active = keys
            .iter()
            .find(|k| k.state() == pb::SigningKeyState::Active)
            .unwrap();
        self.identity
            .signer(&active.kid)
            .await
            .unwrap()
            .sign(claims)
            .unwrap()
    }

    /// The claims of a token this service issued.
    pub fn claims_of(&self, token: &str) -> Claims {
        jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
            .unwrap()
            .claims
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes; returns how long it took.
pub async fn within<F, Fut>(timeout: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
