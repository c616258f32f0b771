//! The identity service: service accounts (internal services and partners), operators, the
//! EdDSA tokens they obtain, and the signing keys every service verifies those tokens with.

mod accounts;
pub mod cli;
mod config;
mod credentials;
mod error;
mod internal_accounts;
mod keys;
mod operators;
mod schema;
mod sessions;
mod tokens;
mod trust;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::{TokenSigner, Verifier, VerifierConfig};
use ecrm_crypto::Secret;
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::identity::v1::operators_server::OperatorsServer;
use ecrm_proto::ecrm::identity::v1::service_accounts_server::ServiceAccountsServer;
use ecrm_proto::ecrm::identity::v1::signing_keys_server::SigningKeysServer;
use ecrm_proto::ecrm::identity::v1::tokens_server::TokensServer;

pub use crate::config::IdentityConfig;
pub use crate::error::IdentityError;
pub use crate::internal_accounts::{
    AccountFile, CREDENTIAL_VARS, FileOutcome, INTERNAL_ACCOUNTS, InternalAccount, internal_account,
};
pub use crate::operators::domain::BOOTSTRAP_ADMIN;
pub use crate::tokens::attempts::FREE_ATTEMPTS;
pub use crate::tokens::domain::AUDIENCES;
pub use ecrm_crypto::MasterKeyArg;

pub static MIGRATIONS: EmbeddedMigrations = embed_migrations!();

pub static SERVICE: ServiceDef = ServiceDef {
    name: "identity",
    schema: "identity",
    default_port: 50051,
    migrations: &MIGRATIONS,
};

/// The service, built: its domain objects and its own verifier.
pub struct Identity {
    keys: Arc<keys::domain::Keys>,
    tokens: Arc<tokens::domain::Tokens>,
    sessions: Arc<sessions::domain::Sessions>,
    accounts: Arc<accounts::domain::Accounts>,
    operators: Arc<operators::domain::Operators>,
    verifier: Verifier,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// Builds the service on `context`'s database: makes sure an active and a next signing key
    /// exist, and starts the verifier that checks every call to it.
    pub async fn new(
        context: ServiceContext,
        config: IdentityConfig,
    ) -> Result<Self, IdentityError> {
        let hashing = credentials::HashPool::new(
            tokio::task::spawn_blocking(credentials::Hasher::new).await??,
        );
        let attempts = config
            .master_key
            .0
            .blind_index_key("identity.login_attempts")?;
        let db = context.db.clone();
        let keys = Arc::new(keys::domain::Keys::new(
            db.clone(),
            config.master_key.0.clone(),
            config.key_publish_delay,
        ));
        keys.ensure().await?;
        let sessions = Arc::new(sessions::domain::Sessions::new(
            db.clone(),
            config.session_lifetime,
        ));
        let tokens = Arc::new(tokens::domain::Tokens::new(
            db.clone(),
            keys.clone(),
            sessions.clone(),
            hashing.clone(),
            attempts.clone(),
            config.issuer.clone(),
            config.token_lifetime,
        ));
        let verifier_config = VerifierConfig {
            refresh_interval: config.auth_refresh_interval,
            ..VerifierConfig::new(config.issuer.clone(), SERVICE.name)
        };
        spawn_sweeper(tokens.clone(), context.shutdown.clone());
        let verifier = Verifier::start(
            verifier_config,
            trust::LocalTrust {
                tokens: tokens.clone(),
            },
            context.shutdown.clone(),
        )
        .await;
        Ok(Self {
            keys,
            tokens,
            sessions,
            accounts: Arc::new(accounts::domain::Accounts::new(db.clone(), hashing.clone())),
            operators: Arc::new(operators::domain::Operators::new(db, hashing, attempts)),
            verifier,
        })
    }

    /// The gRPC services, behind the auth layer.
    pub fn routes(&self) -> ServiceRoutes {
        ServiceRoutes::new(self.verifier.clone())
            .with(TokensServer::new(tokens::grpc::TokensService {
                tokens: self.tokens.clone(),
                sessions: self.sessions.clone(),
            }))
            .with(ServiceAccountsServer::new(
                accounts::grpc::ServiceAccountsService {
                    accounts: self.accounts.clone(),
                },
            ))
            .with(OperatorsServer::new(operators::grpc::OperatorsService {
                operators: self.operators.clone(),
            }))
            .with(SigningKeysServer::new(keys::grpc::SigningKeysService {
                keys: self.keys.clone(),
            }))
    }

    /// The verifier of calls to this service.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// When no operator exists yet, creates [`BOOTSTRAP_ADMIN`] with `password` (or a
    /// generated one) and returns the credential, to be shown once.
    pub async fn bootstrap_admin(
        &self,
        password: Option<Secret<String>>,
    ) -> Result<Option<(String, Secret<String>)>, IdentityError> {
        Ok(self
            .operators
            .bootstrap_admin(password)
            .await?
            .map(|(admin, password)| (admin.username, password)))
    }

    /// Credentials of the internal account `display_name` holding `scopes`, created or given
    /// a fresh secret (earlier ones stop working): `(client_id, client_secret)`.
    pub async fn provision_internal_account(
        &self,
        display_name: &str,
        scopes: ecrm_auth::Scopes,
    ) -> Result<(String, Secret<String>), IdentityError> {
        let (account, secret) = self
            .accounts
            .provision_internal(display_name, scopes)
            .await?;
        Ok((account.client_id, secret))
    }

    /// The signer of a stored key: lets tests and tools sign exactly as this service does.
    pub async fn signer(&self, kid: &str) -> Result<Arc<TokenSigner>, IdentityError> {
        self.keys.signer_by_kid(kid).await
    }
}

/// How often stale login counters, expired revocations and old sessions are deleted.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

fn spawn_sweeper(
    tokens: Arc<tokens::domain::Tokens>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            if let Err(error) = tokens.sweep().await {
                tracing::warn!(error = %error, "cannot sweep login counters, revocations and sessions");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
        }
    });
}

/// Builds the service for `ecrm_platform::serve`: the routes, after creating the bootstrap admin
/// when a password for it is configured and no operator exists.
pub async fn build(
    context: ServiceContext,
    config: IdentityConfig,
) -> Result<ServiceRoutes, IdentityError> {
    let password = config.bootstrap_admin_password.clone();
    let identity = Identity::new(context, config).await?;
    if password.is_some() {
        identity.bootstrap_admin(password).await?;
    }
    Ok(identity.routes())
}
