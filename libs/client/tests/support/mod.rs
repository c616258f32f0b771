//! A running identity and profiles service pair on one test database, and service accounts
//! and operators at identity for the client to call as.
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

use ecrm_client::proto::identity::v1 as pb;
use ecrm_client::{Client, Credentials, Endpoints, Service};
use ecrm_crypto::{MasterKey, Secret};
use ecrm_identity::{Identity, IdentityConfig};
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceRoutes};
use ecrm_testkit::{TestDatabase, TestServer, start_server};
use tokio_util::sync::CancellationToken;

pub const ADMIN_PASSWORD: &str = "admin-password-for-client-tests";
/// How often profiles reloads identity's keys and revocations here.
pub const AUTH_REFRESH: Duration = Duration::from_millis(200);

pub struct Suite {
    pub database: TestDatabase,
    pub identity: TestServer,
    pub profiles: Option<TestServer>,
    shutdown: CancellationToken,
}

impl Drop for Suite {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Suite {
    /// Identity with an `admin` operator, and profiles verifying tokens with identity's keys.
    pub async fn start() -> Self {
        let mut suite = Self::identity_only().await;
        let routes = suite.profiles_routes().await;
        suite.profiles = Some(start_server(routes).await.unwrap());
        suite
    }

    /// Identity alone; profiles can be started later with [`Suite::profiles_routes`].
    pub async fn identity_only() -> Self {
        let database = TestDatabase::new(&[&ecrm_identity::SERVICE, &ecrm_profiles::SERVICE]).await;
        let shutdown = CancellationToken::new();
        let db = database.db(&ecrm_identity::SERVICE).await.unwrap();
        let master = Arc::new(MasterKey::generate().unwrap().0);
        let identity = Identity::new(
            ServiceContext::new(db, shutdown.clone()),
            IdentityConfig {
                auth_refresh_interval: AUTH_REFRESH,
                ..IdentityConfig::new(master)
            },
        )
        .await
        .unwrap();
        identity
            .bootstrap_admin(Some(Secret::new(ADMIN_PASSWORD.to_owned())))
            .await
            .unwrap();
        let identity = start_server(identity.routes()).await.unwrap();
        Self {
            database,
            identity,
            profiles: None,
            shutdown,
        }
    }

    /// The profiles service's routes, with its own internal account at identity.
    pub async fn profiles_routes(&self) -> ServiceRoutes {
        let (client_id, secret) = self
            .service_account(pb::PrincipalKind::Internal, "", &["profiles.read"])
            .await;
        let auth = AuthConfig {
            refresh_interval: AUTH_REFRESH,
            ..AuthConfig::new(&self.identity_url(), &client_id, &secret)
        };
        let db = self.database.db(&ecrm_profiles::SERVICE).await.unwrap();
        let config = ecrm_profiles::ProfilesConfig::new(Arc::new(MasterKey::generate().unwrap().0));
        ecrm_profiles::build(ServiceContext::new(db, self.shutdown.clone()), config, auth)
            .await
            .unwrap()
    }

    pub fn identity_url(&self) -> String {
        format!("http://{}", self.identity.addr())
    }

    pub fn endpoints(&self) -> Endpoints {
        let endpoints = Endpoints::identity(self.identity_url());
        match &self.profiles {
            Some(profiles) => {
                endpoints.with(Service::Profiles, format!("http://{}", profiles.addr()))
            }
            None => endpoints,
        }
    }

    /// A client calling as the `admin` operator.
    pub fn admin(&self) -> Client {
        Client::connect(
            self.endpoints(),
            Credentials::operator("admin", ADMIN_PASSWORD),
        )
        .unwrap()
    }

    /// Creates a service account through identity's API; returns its client id and secret.
    pub async fn service_account(
        &self,
        kind: pb::PrincipalKind,
        partner_id: &str,
        scopes: &[&str],
    ) -> (String, String) {
        let created = self
            .admin()
            .service_accounts()
            .unwrap()
            .create_service_account(pb::CreateServiceAccountRequest {
                display_name: "client tests".to_owned(),
                kind: kind.into(),
                partner_id: partner_id.to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                secret_expires_at: None,
            })
            .await
            .unwrap()
            .into_inner();
        (created.account.unwrap().client_id, created.client_secret)
    }
}

/// The `jti` claim of a JWT, read without verifying it (the test only needs to name it).
pub fn jti_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&json).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn within<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
