//! The outbound communication service: the messages sent to customers by email, SMS and
//! webhook. This first part holds the templates messages are rendered from.

mod config;
#[allow(dead_code, reason = "the queue worker calls the channels next")]
mod delivery;
mod error;
#[allow(
    dead_code,
    unused_imports,
    reason = "the gate is being built; the delivery paths use it next"
)]
mod gate;
mod schema;
mod suppressions;
mod templates;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::Verifier;
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::outbound::v1::suppressions_server::SuppressionsServer;
use ecrm_proto::ecrm::outbound::v1::templates_server::TemplatesServer;

pub use crate::config::OutboundConfig;
pub use crate::delivery::{DeliveryConfig, SIGNATURE_HEADER, verify_webhook_signature};
pub use crate::error::OutboundError;

/// What the blind-index key of suppressed addresses is derived for.
const SUPPRESSION_INDEX_PURPOSE: &str = "suppressions";

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
    suppressions: Arc<suppressions::domain::Suppressions>,
    verifier: Verifier,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    /// Builds the service on `context`'s database, checking calls with `verifier`.
    pub fn new(
        context: &ServiceContext,
        config: &OutboundConfig,
        verifier: Verifier,
    ) -> Result<Self, OutboundError> {
        let index_key = config
            .master_key
            .0
            .blind_index_key(SUPPRESSION_INDEX_PURPOSE)
            .map_err(|_| OutboundError::invalid("master_key", "cannot derive the index key"))?;
        Ok(Self {
            templates: Arc::new(templates::domain::Templates::new(context.db.clone())),
            suppressions: Arc::new(suppressions::domain::Suppressions::new(
                context.db.clone(),
                index_key,
            )),
            verifier,
        })
    }

    /// The gRPC services, behind the auth layer.
    pub fn routes(&self) -> ServiceRoutes {
        ServiceRoutes::new(self.verifier.clone())
            .with(TemplatesServer::new(templates::grpc::TemplatesService {
                templates: self.templates.clone(),
            }))
            .with(SuppressionsServer::new(
                suppressions::grpc::SuppressionsService {
                    suppressions: self.suppressions.clone(),
                },
            ))
    }
}

/// Builds the service for `ecrm_platform::serve`, verifying calls with identity's keys.
pub async fn build(
    context: ServiceContext,
    config: OutboundConfig,
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
    Ok(Outbound::new(&context, &config, verifier)?.routes())
}
