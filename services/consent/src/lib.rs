//! The consent service: processing purposes and their notices, and the append-only,
//! hash-chained ledger of every subject's decisions, with the checks other services ask of it.

mod caller;
mod error;
mod ledger;
mod purposes;
mod schema;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::Verifier;
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::consent::v1::consents_server::ConsentsServer;
use ecrm_proto::ecrm::consent::v1::purposes_server::PurposesServer;

pub use crate::error::ConsentError;
pub use crate::ledger::domain::MAX_CHECK_SUBJECTS;

pub static MIGRATIONS: EmbeddedMigrations = embed_migrations!();

pub static SERVICE: ServiceDef = ServiceDef {
    name: "consent",
    schema: "consent",
    default_port: 50053,
    migrations: &MIGRATIONS,
};

/// The service, built.
pub struct Consent {
    purposes: Arc<purposes::domain::Purposes>,
    ledger: Arc<ledger::domain::Ledger>,
    verifier: Verifier,
}

impl std::fmt::Debug for Consent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consent").finish_non_exhaustive()
    }
}

impl Consent {
    /// Builds the service on `context`'s database, checking calls with `verifier`.
    pub fn new(context: &ServiceContext, verifier: Verifier) -> Self {
        Self {
            purposes: Arc::new(purposes::domain::Purposes::new(context.db.clone())),
            ledger: Arc::new(ledger::domain::Ledger::new(context.db.clone())),
            verifier,
        }
    }

    /// The gRPC services, behind the auth layer.
    pub fn routes(&self) -> ServiceRoutes {
        ServiceRoutes::new(self.verifier.clone())
            .with(PurposesServer::new(purposes::grpc::PurposesService {
                purposes: self.purposes.clone(),
            }))
            .with(ConsentsServer::new(ledger::grpc::ConsentsService {
                ledger: self.ledger.clone(),
            }))
    }
}

/// Builds the service for `ecrm_platform::serve`, verifying calls with identity's keys.
pub async fn build(
    context: ServiceContext,
    auth: AuthConfig,
) -> Result<ServiceRoutes, ConsentError> {
    let verifier = auth
        .verifier(
            SERVICE.name,
            vec!["consent.read".to_owned()],
            context.shutdown.clone(),
        )
        .await
        .map_err(|error| ConsentError::invalid(error.flag, error.reason))?;
    Ok(Consent::new(&context, verifier).routes())
}
