//! The outbound communication service: the messages sent to customers by email, SMS and
//! webhook, and only those the law and the customer allow. Templates say what a message says;
//! transactional messages and campaigns queue messages; workers pass each through the gate at
//! the moment of sending and hand the cleared ones to their channel; one-click unsubscribes
//! come back over HTTP.

mod campaigns;
mod config;
pub mod consent_client;
mod delivery;
mod dispatch;
mod error;
mod gate;
mod messages;
mod privacy;
mod profiles_client;
mod purposes;
mod schema;
mod segments_client;
mod suppressions;
mod templates;
pub mod unsubscribe;

use std::future::Future;
use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::{TokenSource, Verifier};
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::outbound::v1::campaigns_server::CampaignsServer;
use ecrm_proto::ecrm::outbound::v1::messages_server::MessagesServer;
use ecrm_proto::ecrm::outbound::v1::suppressions_server::SuppressionsServer;
use ecrm_proto::ecrm::outbound::v1::templates_server::TemplatesServer;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use tokio::net::TcpListener;

use crate::consent_client::ConsentClient;
use crate::dispatch::Dispatcher;
use crate::gate::Gate;
use crate::profiles_client::ProfilesClient;
use crate::purposes::Purposes;
use crate::segments_client::SegmentsClient;
use crate::unsubscribe::UnsubscribeLinks;

pub use crate::delivery::{DeliveryConfig, SIGNATURE_HEADER, verify_webhook_signature};

pub use crate::config::OutboundConfig;
pub use crate::error::OutboundError;
/// Quiet hours, the gate's check of local time: public for benchmarks.
pub use crate::gate::quiet_hours::QuietHours;
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

/// The services outbound calls: consent (what each customer agreed to), profiles (where to
/// write to them) and segmentation (who is in a segment). Without consent or profiles nothing
/// is sent; without segmentation campaigns go to explicit lists only.
#[derive(Clone, Default)]
pub struct Peers {
    consent: Option<ConsentClient>,
    profiles: Option<ProfilesClient>,
    segments: Option<SegmentsClient>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("consent", &self.consent.is_some())
            .field("profiles", &self.profiles.is_some())
            .field("segments", &self.segments.is_some())
            .finish()
    }
}

impl Peers {
    /// The services on these channels, called with tokens from `tokens`.
    pub fn connect(
        consent: Option<tonic::transport::Channel>,
        profiles: Option<tonic::transport::Channel>,
        segmentation: Option<tonic::transport::Channel>,
        tokens: Arc<dyn TokenSource>,
    ) -> Self {
        Self {
            consent: consent.map(|channel| ConsentClient::new(channel, tokens.clone())),
            profiles: profiles.map(|channel| ProfilesClient::new(channel, tokens.clone())),
            segments: segmentation.map(|channel| SegmentsClient::new(channel, tokens)),
        }
    }
}

/// The service, built.
pub struct Outbound {
    templates: Arc<templates::domain::Templates>,
    suppressions: Arc<suppressions::domain::Suppressions>,
    messages: Arc<messages::domain::Messages>,
    campaigns: Arc<campaigns::domain::Campaigns>,
    dispatcher: Arc<Dispatcher>,
    links: Arc<UnsubscribeLinks>,
    unsubscribes: Arc<unsubscribe::domain::Unsubscribes>,
    privacy: Arc<privacy::domain::Privacy>,
    verifier: Verifier,
    context: ServiceContext,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    /// Builds the service on `context`'s database, checking calls with `verifier`, calling no
    /// other service: templates and suppressions work, nothing is sent.
    pub fn new(
        context: &ServiceContext,
        config: &OutboundConfig,
        verifier: Verifier,
    ) -> Result<Self, OutboundError> {
        Self::connected(context, config, verifier, Peers::default())
    }

    /// Builds the service calling `peers`. Nothing runs in the background until
    /// [`Outbound::start`].
    pub fn connected(
        context: &ServiceContext,
        config: &OutboundConfig,
        verifier: Verifier,
        peers: Peers,
    ) -> Result<Self, OutboundError> {
        let invalid = |error: ecrm_platform::config::ConfigError| {
            OutboundError::invalid(error.flag, error.reason)
        };
        let policy = config.policy().map_err(invalid)?;
        let settings = config.dispatch().map_err(invalid)?;
        let db = context.db.clone();
        let key =
            |purpose: &str| {
                config.master_key.0.blind_index_key(purpose).map_err(|_| {
                    OutboundError::invalid("--master-key", "cannot derive a key from it")
                })
            };
        let suppressions = Arc::new(suppressions::domain::Suppressions::new(
            db.clone(),
            key(SUPPRESSION_INDEX_PURPOSE)?,
        ));
        let links = Arc::new(UnsubscribeLinks::new(
            key(UNSUBSCRIBE_KEY_PURPOSE)?,
            &config.unsubscribe.public_url,
        )?);
        let channels = Arc::new(delivery::Channels::from_config(&config.delivery)?);
        let purposes = Arc::new(Purposes::new(peers.consent.clone()));
        let gate = Arc::new(Gate::new(
            db.clone(),
            purposes.clone(),
            peers.profiles,
            suppressions.clone(),
            links.clone(),
            channels.clone(),
            policy,
        ));
        Ok(Self {
            templates: Arc::new(templates::domain::Templates::new(db.clone())),
            messages: Arc::new(messages::domain::Messages::new(
                db.clone(),
                purposes.clone(),
                channels.clone(),
            )),
            campaigns: Arc::new(campaigns::domain::Campaigns::new(
                db.clone(),
                purposes,
                channels.clone(),
                peers.segments,
            )),
            dispatcher: Arc::new(Dispatcher::new(
                db.clone(),
                gate,
                channels,
                suppressions.clone(),
                settings,
            )),
            privacy: Arc::new(privacy::domain::Privacy::new(db.clone())),
            unsubscribes: Arc::new(unsubscribe::domain::Unsubscribes::new(
                db,
                peers.consent,
                config.unsubscribe.retry,
            )),
            suppressions,
            links,
            verifier,
            context: context.clone(),
        })
    }

    /// Starts the background work until the service shuts down: the queue's workers, and the
    /// forwarding of one-click unsubscribes to the consent ledger.
    pub fn start(&self) {
        self.dispatcher.spawn(self.context.shutdown.clone());
        self.unsubscribes
            .clone()
            .spawn_forwarder(self.context.shutdown.clone());
    }

    /// The links of one-click unsubscribes, for the messages sent.
    pub fn unsubscribe_links(&self) -> &UnsubscribeLinks {
        &self.links
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
            .with(MessagesServer::new(messages::grpc::MessagesService {
                messages: self.messages.clone(),
            }))
            .with(CampaignsServer::new(campaigns::grpc::CampaignsService {
                campaigns: self.campaigns.clone(),
            }))
            .with(PersonalDataServer::new(
                privacy::grpc::PersonalDataService {
                    privacy: self.privacy.clone(),
                },
            ))
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

/// Builds the service for `ecrm_platform::serve`, verifying calls with identity's keys, calling
/// the configured services, serving unsubscribes over HTTP and running the queue's workers.
pub async fn build(
    context: ServiceContext,
    config: OutboundConfig,
    auth: AuthConfig,
) -> Result<ServiceRoutes, OutboundError> {
    let addr = config.unsubscribe.http_addr;
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        OutboundError::invalid("--http-addr", format!("cannot listen on {addr}: {error}"))
    })?;
    build_with_http(context, config, auth, listener).await
}

/// Like [`build`], serving unsubscribes on `http`, a listener the caller bound (so it knows the
/// port before the service starts, and can put it in `config.unsubscribe.public_url`);
/// `config.unsubscribe.http_addr` is not used.
pub async fn build_with_http(
    context: ServiceContext,
    config: OutboundConfig,
    auth: AuthConfig,
    http: TcpListener,
) -> Result<ServiceRoutes, OutboundError> {
    let invalid = |error: ecrm_platform::config::ConfigError| {
        OutboundError::invalid(error.flag, error.reason)
    };
    config.validate().map_err(invalid)?;
    let (verifier, tokens) = auth
        .verifier_and_tokens(&context, SERVICE.name, vec!["outbound.send".to_owned()])
        .await
        .map_err(|error| OutboundError::invalid(error.flag, error.reason))?;
    let consent = config.consent_endpoint().map_err(invalid)?;
    let profiles = config.profiles_endpoint().map_err(invalid)?;
    let segmentation = config.segmentation_endpoint().map_err(invalid)?;
    if consent.is_none() {
        tracing::warn!("no --consent-url: nothing is sent, unsubscribes are kept, not forwarded");
    }
    if profiles.is_none() {
        tracing::warn!("no --profiles-url: nothing is sent");
    }
    let connect = |endpoint: Option<_>| endpoint.map(|e| context.connect(e)).transpose();
    let peers = Peers::connect(
        connect(consent).map_err(invalid)?,
        connect(profiles).map_err(invalid)?,
        connect(segmentation).map_err(invalid)?,
        tokens,
    );
    let outbound = Outbound::connected(&context, &config, verifier, peers)?;
    let addr = http
        .local_addr()
        .map_err(|error| OutboundError::invalid("--http-addr", error.to_string()))?;
    let serving = outbound.serve_http(http);
    tokio::spawn(async move {
        if let Err(error) = serving.await {
            tracing::error!(error = %error, "the unsubscribe endpoint stopped");
        }
    });
    tracing::info!(%addr, "unsubscribe endpoint listening");
    outbound.start();
    Ok(outbound.routes())
}
