//! The profiles service: one profile per customer, found through any of their identifiers, with
//! personal values sealed under per-subject keys, interactions and orders, a change feed, and a
//! sync API for partners.

mod access_log;
mod attributes;
mod caller;
mod changes;
mod config;
mod consent_sharing;
mod disclosures;
mod error;
mod identifiers;
mod interactions;
mod keys;
mod notices;
mod partner_sync;
mod privacy;
mod profiles;
mod schema;
mod sharing;

/// What the coverage-guided fuzz targets (`fuzz/`) call: identifier normalisation. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::identifiers::domain::{normalise_email, normalise_phone};
}

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::Verifier;
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_proto::ecrm::profiles::v1::interactions_server::InteractionsServer;
use ecrm_proto::ecrm::profiles::v1::partner_sync_server::PartnerSyncServer;
use ecrm_proto::ecrm::profiles::v1::profiles_server::ProfilesServer;
use tokio_util::sync::CancellationToken;

pub use crate::caller::{ON_BEHALF_OF_HEADER, PURPOSE_HEADER};
pub use crate::config::ProfilesConfig;
pub use crate::consent_sharing::ConsentSharing;
pub use crate::error::ProfilesError;
/// An identifier normalised, and its blind index: public for benchmarks.
pub use crate::identifiers::domain::{Identifier, IdentifierKind};
pub use crate::sharing::{NothingShared, SharedFields, SharingPolicy};

pub static MIGRATIONS: EmbeddedMigrations = embed_migrations!();

pub static SERVICE: ServiceDef = ServiceDef {
    name: "profiles",
    schema: "profiles",
    default_port: 50052,
    migrations: &MIGRATIONS,
};

/// Purpose of the blind-index key derived from the master key.
const LOOKUP_KEY_PURPOSE: &str = "profiles.identifier_lookup";

/// The service, built.
pub struct Profiles {
    profiles: Arc<profiles::domain::Profiles>,
    interactions: Arc<interactions::domain::Interactions>,
    partners: Arc<partner_sync::domain::PartnerSync>,
    feed: Arc<changes::grpc::Feed>,
    privacy: Arc<privacy::domain::Privacy>,
    verifier: Verifier,
}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiles").finish_non_exhaustive()
    }
}

impl Profiles {
    /// Builds the service on `context`'s database, checking calls with `verifier`; no subject
    /// shares anything with partners.
    pub fn new(
        context: ServiceContext,
        config: ProfilesConfig,
        verifier: Verifier,
    ) -> Result<Self, ProfilesError> {
        Self::with_sharing(context, config, verifier, Arc::new(NothingShared))
    }

    /// Builds the service with `sharing` deciding what subjects share with partners.
    pub fn with_sharing(
        context: ServiceContext,
        config: ProfilesConfig,
        verifier: Verifier,
        sharing: Arc<dyn SharingPolicy>,
    ) -> Result<Self, ProfilesError> {
        let master = config.master_key.0.clone();
        let lookup_key = master.blind_index_key(LOOKUP_KEY_PURPOSE)?;
        let keys = keys::SubjectKeys::new(master);
        let signal = changes::domain::ChangeSignal::default();
        let db = context.db.clone();
        let interactions = Arc::new(interactions::domain::Interactions::new(
            db.clone(),
            keys.clone(),
            lookup_key.clone(),
            signal.clone(),
        ));
        spawn_retention(
            interactions.clone(),
            config.retention_sweep_interval,
            context.shutdown.clone(),
        );
        let privacy = Arc::new(privacy::domain::Privacy::new(
            db.clone(),
            keys.clone(),
            lookup_key.clone(),
            signal.clone(),
        )?);
        let partners = Arc::new(partner_sync::domain::PartnerSync::new(
            db.clone(),
            keys.clone(),
            lookup_key.clone(),
            signal.clone(),
            sharing,
        ));
        Ok(Self {
            privacy,
            partners,
            profiles: Arc::new(profiles::domain::Profiles::new(
                db.clone(),
                keys.clone(),
                lookup_key,
                signal.clone(),
            )),
            interactions,
            feed: Arc::new(changes::grpc::Feed::new(
                db,
                keys.clone(),
                signal,
                config.feed_poll_interval,
                context.shutdown,
            )),
            verifier,
        })
    }

    /// The gRPC services, behind the auth layer.
    pub fn routes(&self) -> ServiceRoutes {
        ServiceRoutes::new(self.verifier.clone())
            .with(ProfilesServer::new(profiles::grpc::ProfilesService {
                profiles: self.profiles.clone(),
                partners: self.partners.clone(),
                feed: self.feed.clone(),
            }))
            .with(PartnerSyncServer::new(
                partner_sync::grpc::PartnerSyncService {
                    partners: self.partners.clone(),
                },
            ))
            .with(PersonalDataServer::new(
                privacy::grpc::PersonalDataService {
                    privacy: self.privacy.clone(),
                },
            ))
            .with(
                InteractionsServer::new(interactions::grpc::InteractionsService {
                    interactions: self.interactions.clone(),
                })
                .max_decoding_message_size(interactions::grpc::MAX_MESSAGE_BYTES),
            )
    }
}

fn spawn_retention(
    interactions: Arc<interactions::domain::Interactions>,
    interval: std::time::Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            match interactions.sweep_expired().await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "deleted interactions past their retention"),
                Err(error) => tracing::warn!(error = %error, "cannot delete expired interactions"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    });
}

/// Builds the service for `ecrm_platform::serve`, verifying calls with identity's keys and,
/// when a consent service is configured, sharing with partners what subjects agreed to share.
pub async fn build(
    context: ServiceContext,
    config: ProfilesConfig,
    auth: AuthConfig,
) -> Result<ServiceRoutes, ProfilesError> {
    let (verifier, tokens) = auth
        .verifier_and_tokens(&context, SERVICE.name, vec!["profiles.read".to_owned()])
        .await
        .map_err(|error| ProfilesError::invalid(error.flag, error.reason))?;
    let consent = config
        .consent_endpoint()
        .map_err(|error| ProfilesError::invalid(error.flag, error.reason))?;
    let sharing: Arc<dyn SharingPolicy> = match consent {
        Some(consent) => {
            let channel = context
                .connect(consent)
                .map_err(|error| ProfilesError::invalid(error.flag, error.reason))?;
            Arc::new(ConsentSharing::new(channel, tokens))
        }
        None => Arc::new(NothingShared),
    };
    Ok(Profiles::with_sharing(context, config, verifier, sharing)?.routes())
}
