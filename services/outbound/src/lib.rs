//! The outbound communication service: the messages sent to customers by email, SMS and
//! webhook. This first part holds the templates messages are rendered from.

mod error;
mod schema;
mod templates;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::Verifier;
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::outbound::v1::templates_server::TemplatesServer;

pub use crate::error::OutboundError;

pub static MIGRATIONS: EmbeddedMigrations = embed_migrations!();

pub static SERVICE: ServiceDef = ServiceDef {
    name: "outbound",
    schema: "outbound",
    default_port: 50055,
    migrations: &MIGRATIONS,
};

/// The service, built.
pub struct Outbound {
    templates: Arc<templates::domain::Templates>,
    verifier: Verifier,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    /// Builds the service on `context`'s database, checking calls with `verifier`.
    pub fn new(context: &ServiceContext, verifier: Verifier) -> Self {
        Self {
            templates: Arc::new(templates::domain::Templates::new(context.db.clone())),
            verifier,
        }
    }

    /// The gRPC services, behind the auth layer.
    pub fn routes(&self) -> ServiceRoutes {
        ServiceRoutes::new(self.verifier.clone()).with(TemplatesServer::new(
            templates::grpc::TemplatesService {
                templates: self.templates.clone(),
            },
        ))
    }
}

/// Builds the service for `ecrm_platform::serve`, verifying calls with identity's keys.
pub async fn build(
    context: ServiceContext,
    auth: AuthConfig,
) -> Result<ServiceRoutes, OutboundError> {
    let (verifier, _tokens) = auth
        .verifier_and_tokens(
            SERVICE.name,
            vec!["outbound.send".to_owned()],
            context.shutdown.clone(),
        )
        .await
        .map_err(|error| OutboundError::invalid(error.flag, error.reason))?;
    Ok(Outbound::new(&context, verifier).routes())
}
