//! The outbound service running in this process on a fresh database, and a token maker.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the suite"
)]
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

pub mod campaigns;
pub mod sending;

use std::sync::Arc;

use ecrm_auth::{Scope, Scopes};
use ecrm_crypto::MasterKey;
use ecrm_outbound::{Outbound, OutboundConfig, SERVICE};
use ecrm_platform::ServiceContext;
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use tokio_util::sync::CancellationToken;
use tonic::Request;

pub struct Suite {
    _database: TestDatabase,
    pub auth: TestAuth,
    pub server: TestServer,
    _shutdown: tokio_util::sync::DropGuard,
}

impl Suite {
    pub async fn start() -> Self {
        let database = TestDatabase::new(&[&SERVICE]).await;
        let auth = TestAuth::new();
        let shutdown = CancellationToken::new();
        let outbound = Outbound::new(
            &ServiceContext::new(database.db(&SERVICE).await.unwrap(), shutdown.clone()),
            &OutboundConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("outbound").await,
        )
        .unwrap();
        let server = start_server(outbound.routes()).await.unwrap();
        Self {
            _database: database,
            auth,
            server,
            _shutdown: shutdown.drop_guard(),
        }
    }

    pub fn token(&self, scopes: &[Scope]) -> String {
        self.auth.token(&TokenSpec::internal(
            "outbound",
            scopes.iter().copied().collect::<Scopes>(),
        ))
    }
}

pub fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
