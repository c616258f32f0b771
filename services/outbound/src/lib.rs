//! The outbound communication service: the messages sent to customers by email, SMS and
//! webhook. This first part holds the templates messages are rendered from.

mod config;
pub mod consent_client;
mod error;
#[allow(dead_code, unused_imports, reason = "the gate is being built; the delivery paths use it next")]
mod gate;
mod schema;
mod suppressions;
mod templates;
pub mod unsubscribe;

use std::future::Future;
use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::Verifier;
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::outbound::v1::suppressions_server::SuppressionsServer;
use ecrm_proto::ecrm::outbound::v1::templates_server::TemplatesServer;
use tokio::net::TcpListener;

use crate::consent_client::ConsentClient;
use crate::unsubscribe::UnsubscribeLinks;

pub use crate::config::OutboundConfig;
pub use crate::error::OutboundError;
pub use crate::templates::domain::Channel;

/// What the blind-index key of suppressed addresses is derived for.
const SUPPRESSION_INDEX_PURPOSE: &str = "suppressions";
/// What the key signing unsubscribe links is derived for.
const UNSUBSCRIBE_KEY_PURPOSE: &str = "unsubscribe";

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
    context: ServiceContext,
    retry: unsubscribe::ForwardRetry,
    consent: Option<ConsentClient>,
    links: Arc<UnsubscribeLinks>,
    unsubscribes: Arc<unsubscribe::domain::Unsubscribes>,
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
        let link_key = config
            .master_key
            .0
            .blind_index_key(UNSUBSCRIBE_KEY_PURPOSE)
            .map_err(|_| OutboundError::invalid("master_key", "cannot derive the link key"))?;
        let retry = config.unsubscribe.retry;
        Ok(Self {
            templates: Arc::new(templates::domain::Templates::new(context.db.clone())),
            suppressions: Arc::new(suppressions::domain::Suppressions::new(
                context.db.clone(),
                index_key,
            )),
            verifier,
            context: context.clone(),
            retry,
            consent: None,
            links: Arc::new(UnsubscribeLinks::new(
                link_key,
                &config.unsubscribe.public_url,
            )?),
            unsubscribes: Arc::new(unsubscribe::domain::Unsubscribes::new(
                context.db.clone(),
                None,
                retry,
            )),
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

impl Outbound {
    /// Calls `consent` (the send path's consent checks, and unsubscribes recorded as
    /// withdrawals) and forwards waiting unsubscribes there in the background until the
    /// service shuts down.
    #[must_use]
    pub fn with_consent(mut self, consent: ConsentClient) -> Self {
        self.unsubscribes = Arc::new(unsubscribe::domain::Unsubscribes::new(
            self.context.db.clone(),
            Some(consent.clone()),
            self.retry,
        ));
        self.unsubscribes
            .clone()
            .spawn_forwarder(self.context.shutdown.clone());
        self.consent = Some(consent);
        self
    }

    /// The consent service's client, when one is configured.
    pub fn consent(&self) -> Option<&ConsentClient> {
        self.consent.as_ref()
    }

    /// The links of one-click unsubscribes, for the messages sent.
    pub fn unsubscribe_links(&self) -> &UnsubscribeLinks {
        &self.links
    }

    /// The HTTP routes: the one-click unsubscribe endpoint. Serve them with
    /// [`Outbound::serve_http`], which gives handlers the peer's address.
    pub fn http_router(&self) -> axum::Router {
        unsubscribe::http::router(self.links.clone(), self.unsubscribes.clone())
    }

    /// Serves [`Outbound::http_router`] on `listener` until the service shuts down.
    pub fn serve_http(
        &self,
        listener: TcpListener,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
        unsubscribe::http::serve(listener, self.http_router(), self.context.shutdown.clone())
    }
}

/// Builds the service for `ecrm_platform::serve`, verifying calls with identity's keys.
pub async fn build(
    context: ServiceContext,
    config: OutboundConfig,
    auth: AuthConfig,
) -> Result<ServiceRoutes, OutboundError> {
    let (verifier, tokens) = auth
        .verifier_and_tokens(
            SERVICE.name,
            vec!["outbound.send".to_owned()],
            context.shutdown.clone(),
        )
        .await
        .map_err(|error| OutboundError::invalid(error.flag, error.reason))?;
    let mut outbound = Outbound::new(&context, &config, verifier)?;
    let consent = config
        .consent_endpoint()
        .map_err(|error| OutboundError::invalid(error.flag, error.reason))?;
    let addr = config.unsubscribe.http_addr;
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        OutboundError::invalid("--http-addr", format!("cannot listen on {addr}: {error}"))
    })?;
    match consent {
        Some(consent) => {
            outbound = outbound.with_consent(ConsentClient::new(consent.connect_lazy(), tokens));
        }
        None => tracing::warn!("no --consent-url: unsubscribes are kept, not forwarded"),
    }
    let serving = outbound.serve_http(listener);
    tokio::spawn(async move {
        if let Err(error) = serving.await {
            tracing::error!(error = %error, "the unsubscribe endpoint stopped");
        }
    });
    tracing::info!(%addr, "unsubscribe endpoint listening");
    Ok(outbound.routes())
}
