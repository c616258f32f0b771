//! The segmentation service: a projection of the profiles change feed (orders, returns,
//! visits, merges, erasures, restrictions) into per-customer aggregates, which scores,
//! segments, tiers and KPIs read.

mod config;
mod error;
mod kpis;
mod privacy;
mod projection;
mod rfm;
mod rules;
mod schema;
mod segments;
mod tiers;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::{TokenSource, Verifier};
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::consent_feed::ConsentFollower;
use ecrm_platform::profiles_feed::{ChangeSink, ProfilesFollower};
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_proto::ecrm::segmentation::v1::kpis_server::KpisServer;
use ecrm_proto::ecrm::segmentation::v1::rfm_server::RfmServer;
use ecrm_proto::ecrm::segmentation::v1::segments_server::SegmentsServer;
use ecrm_proto::ecrm::segmentation::v1::tiers_server::TiersServer;
use tonic::transport::Channel;

pub use crate::config::SegmentationConfig;
pub use crate::error::SegmentationError;
/// The SQL `CASE` that names a customer's RFM segment: public for benchmarks.
pub use crate::rfm::domain::segment_case_sql;
/// A segment rule, parsed and evaluated on a customer's facts: public for benchmarks.
pub use crate::rules::{Rule, Value};
/// The type of each field a segment rule may read, the schema rules are parsed with: public
/// for benchmarks.
pub use crate::segments::facts::field_type;

pub static MIGRATIONS: EmbeddedMigrations = embed_migrations!();

pub static SERVICE: ServiceDef = ServiceDef {
    name: "segmentation",
    schema: "segmentation",
    default_port: 50054,
    migrations: &MIGRATIONS,
};

/// The service, built.
pub struct Segmentation {
    context: ServiceContext,
    projection: Arc<projection::domain::Projection>,
    objections: Arc<projection::objections::Objections>,
    privacy: Arc<privacy::domain::Privacy>,
    rfm: Arc<rfm::domain::Rfm>,
    segments: Arc<segments::domain::Segments>,
    tiers: Arc<tiers::domain::Tiers>,
    kpis: Arc<kpis::domain::Kpis>,
    verifier: Verifier,
}

impl std::fmt::Debug for Segmentation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmentation").finish_non_exhaustive()
    }
}

impl Segmentation {
    /// Builds the service on `context`'s database, checking calls with `verifier`, and starts
    /// the upkeep of segment memberships.
    pub fn new(
        context: &ServiceContext,
        config: &SegmentationConfig,
        verifier: Verifier,
    ) -> Result<Self, SegmentationError> {
        let rates = config
            .rates()
            .map_err(|error| SegmentationError::invalid(error.flag, error.reason))?;
        let memberships = Arc::new(segments::maintain::Maintainer::new(
            ecrm_platform::money::minor_units(&rates.reporting),
        ));
        segments::worker::spawn(
            context.db.clone(),
            memberships.clone(),
            context.shutdown.clone(),
        );
        let rfm = Arc::new(rfm::domain::Rfm::new(
            context.db.clone(),
            rates.clone(),
            memberships.sweep.clone(),
        ));
        let settling = rfm.clone();
        tokio::spawn(async move {
            match settling.settle_abandoned().await {
                Ok(0) => {}
                Ok(settled) => {
                    tracing::info!(settled, "settled RFM jobs a stopped process left running")
                }
                Err(error) => tracing::warn!(error = %error, "cannot settle abandoned RFM jobs"),
            }
        });
        Ok(Self {
            context: context.clone(),
            projection: Arc::new(projection::domain::Projection::new(
                rates.clone(),
                memberships.clone(),
            )),
            objections: Arc::new(projection::objections::Objections::new(memberships.clone())),
            privacy: Arc::new(privacy::domain::Privacy::new(
                context.db.clone(),
                memberships.clone(),
            )),
            segments: Arc::new(segments::domain::Segments::new(
                context.db.clone(),
                &rates.reporting,
                memberships.changed.clone(),
                memberships.sweep.clone(),
                context.shutdown.clone(),
            )),
            tiers: Arc::new(tiers::domain::Tiers::new(
                context.db.clone(),
                &rates.reporting,
            )),
            kpis: Arc::new(kpis::domain::Kpis::new(
                context.db.clone(),
                &rates.reporting,
            )),
            rfm,
            verifier,
        })
    }

    /// Projects the change feed of `profiles`, read with `tokens`, until the service shuts
    /// down.
    #[must_use]
    pub fn following_profiles(self, profiles: Channel, tokens: Arc<dyn TokenSource>) -> Self {
        ProfilesFollower::new(
            self.context.db.clone(),
            profiles,
            tokens,
            self.projection.clone(),
        )
        .spawn(self.context.shutdown.clone());
        self
    }

    /// Follows the ledger of `consent`, read with `tokens`, for objections to profiling, until
    /// the service shuts down.
    #[must_use]
    pub fn following_consent(self, consent: Channel, tokens: Arc<dyn TokenSource>) -> Self {
        ConsentFollower::new(
            self.context.db.clone(),
            consent,
            tokens,
            self.objections.clone(),
        )
        .spawn(self.context.shutdown.clone());
        self
    }

    /// What the profiles change feed is applied with: the projection, and the segment
    /// memberships it keeps up to date in the same transaction. The follower of
    /// [`Segmentation::following_profiles`] applies the feed with it; benchmarks apply changes
    /// directly.
    pub fn change_sink(&self) -> Arc<impl ChangeSink<Error = SegmentationError> + use<>> {
        self.projection.clone()
    }

    /// The gRPC services, behind the auth layer.
    pub fn routes(&self) -> ServiceRoutes {
        ServiceRoutes::new(self.verifier.clone())
            .with(RfmServer::new(rfm::grpc::RfmService {
                rfm: self.rfm.clone(),
            }))
            .with(SegmentsServer::new(segments::grpc::SegmentsService {
                segments: self.segments.clone(),
            }))
            .with(TiersServer::new(tiers::grpc::TiersService {
                tiers: self.tiers.clone(),
            }))
            .with(KpisServer::new(kpis::grpc::KpisService {
                kpis: self.kpis.clone(),
            }))
            .with(PersonalDataServer::new(
                privacy::grpc::PersonalDataService {
                    privacy: self.privacy.clone(),
                },
            ))
    }
}

/// Builds the service for `ecrm_platform::serve`, verifying calls with identity's keys and
/// projecting the profiles change feed when a profiles service is configured.
pub async fn build(
    context: ServiceContext,
    config: SegmentationConfig,
    auth: AuthConfig,
) -> Result<ServiceRoutes, SegmentationError> {
    let (verifier, tokens) = auth
        .verifier_and_tokens(&context, SERVICE.name, vec!["segments.read".to_owned()])
        .await
        .map_err(|error| SegmentationError::invalid(error.flag, error.reason))?;
    let mut segmentation = Segmentation::new(&context, &config, verifier)?;
    let profiles = config
        .profiles_endpoint()
        .map_err(|error| SegmentationError::invalid(error.flag, error.reason))?;
    let consent = config
        .consent_endpoint()
        .map_err(|error| SegmentationError::invalid(error.flag, error.reason))?;
    let connect = |endpoint| {
        context
            .connect(endpoint)
            .map_err(|error| SegmentationError::invalid(error.flag, error.reason))
    };
    match profiles {
        Some(profiles) => {
            segmentation = segmentation.following_profiles(connect(profiles)?, tokens.clone());
        }
        None => tracing::warn!("no --profiles-url: nothing is projected"),
    }
    match consent {
        Some(consent) => {
            segmentation = segmentation.following_consent(connect(consent)?, tokens);
        }
        None => tracing::warn!("no --consent-url: no objection to profiling is known"),
    }
    Ok(segmentation.routes())
}
