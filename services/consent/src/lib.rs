//! The consent service: processing purposes and their notices, and the append-only,
//! hash-chained ledger of every subject's decisions, with the checks other services ask of it.

mod caller;
mod config;
mod dsr;
mod error;
mod follow;
mod ledger;
mod orchestration;
mod outbound_messages;
mod privacy;
mod profiles_directory;
mod purposes;
mod schema;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_auth::Verifier;
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceDef, ServiceRoutes};
use ecrm_proto::ecrm::consent::v1::consents_server::ConsentsServer;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_server::DataSubjectRequestsServer;
use ecrm_proto::ecrm::consent::v1::purposes_server::PurposesServer;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;

pub use crate::config::ConsentConfig;
pub use crate::dsr::verification::PURPOSE_KEY as VERIFICATION_PURPOSE;
pub use crate::error::ConsentError;
pub use crate::ledger::domain::MAX_CHECK_SUBJECTS;
pub use crate::orchestration::worker::Target as PersonalDataTarget;
pub use crate::profiles_directory::ProfilesDirectory;

pub static MIGRATIONS: EmbeddedMigrations = embed_migrations!();

pub static SERVICE: ServiceDef = ServiceDef {
    name: "consent",
    schema: "consent",
    default_port: 50053,
    migrations: &MIGRATIONS,
};

/// The service, built.
pub struct Consent {
    context: ServiceContext,
    master: Arc<ecrm_crypto::MasterKey>,
    task_interval: std::time::Duration,
    purposes: Arc<purposes::domain::Purposes>,
    ledger: Arc<ledger::domain::Ledger>,
    requests: Arc<dsr::domain::Requests>,
    verification: Arc<dsr::verification::Verification>,
    documents: Arc<orchestration::documents::Documents>,
    privacy: Arc<privacy::domain::Privacy>,
    directory: Option<Arc<ProfilesDirectory>>,
    verifier: Verifier,
}

impl std::fmt::Debug for Consent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consent").finish_non_exhaustive()
    }
}

impl Consent {
    /// Builds the service on `context`'s database, checking calls with `verifier`, and signs
    /// ledger checkpoints every `config.checkpoint_interval` until `context` shuts down.
    pub fn new(
        context: &ServiceContext,
        config: &ConsentConfig,
        verifier: Verifier,
    ) -> Result<Self, ConsentError> {
        let key = config
            .master_key
            .0
            .signing_key(CHECKPOINT_KEY_PURPOSE)
            .map_err(|_| ConsentError::invalid("master_key", "cannot derive the checkpoint key"))?;
        let ledger = Arc::new(ledger::domain::Ledger::new(
            context.db.clone(),
            Arc::new(key),
            context.shutdown.clone(),
        ));
        spawn_checkpoints(
            ledger.clone(),
            config.checkpoint_interval,
            context.shutdown.clone(),
        );
        let documents_key = config
            .master_key
            .0
            .signing_key(DOCUMENTS_KEY_PURPOSE)
            .map_err(|_| ConsentError::invalid("master_key", "cannot derive the documents key"))?;
        let documents = Arc::new(orchestration::documents::Documents::new(
            context.db.clone(),
            config.master_key.0.clone(),
            Arc::new(documents_key),
        ));
        let verification = Arc::new(dsr::verification::Verification::new(
            &config.master_key.0,
            config.verification_template.clone(),
            config.verification_code_ttl,
        )?);
        Ok(Self {
            documents,
            context: context.clone(),
            master: config.master_key.0.clone(),
            task_interval: config.task_interval,
            purposes: Arc::new(purposes::domain::Purposes::new(context.db.clone())),
            ledger,
            requests: Arc::new(dsr::domain::Requests::new(
                context.db.clone(),
                Vec::new(),
                config.master_key.0.clone(),
                verification.clone(),
            )),
            verification,
            privacy: Arc::new(privacy::domain::Privacy::new(context.db.clone())),
            directory: None,
            verifier,
        })
    }

    /// Carries approved requests out at `servers` (every service holding personal data),
    /// calling them with `tokens`, with a worker running until the service shuts down.
    #[must_use]
    pub fn with_personal_data(
        mut self,
        servers: Vec<PersonalDataTarget>,
        tokens: Arc<dyn ecrm_auth::TokenSource>,
    ) -> Self {
        let names = servers.iter().map(|s| s.name.clone()).collect();
        self.requests = Arc::new(dsr::domain::Requests::new(
            self.context.db.clone(),
            names,
            self.master.clone(),
            self.verification.clone(),
        ));
        let worker = Arc::new(orchestration::worker::Orchestrator::new(
            self.context.db.clone(),
            servers,
            tokens,
            self.master.clone(),
            self.requests.clone(),
        ));
        worker.spawn(self.task_interval, self.context.shutdown.clone());
        self
    }

    /// Follows the profiles change feed at `profiles` (merges, purchases) until the service
    /// shuts down, reading it with `tokens`.
    #[must_use]
    pub fn following_profiles(
        self,
        profiles: tonic::transport::Channel,
        tokens: Arc<dyn ecrm_auth::TokenSource>,
    ) -> Self {
        ecrm_platform::profiles_feed::ProfilesFollower::new(
            self.context.db.clone(),
            profiles,
            tokens,
            Arc::new(follow::worker::ConsentSink),
        )
        .spawn(self.context.shutdown.clone());
        self
    }

    /// Emails requesters the code that verifies them through `outbound`, calling it with
    /// `tokens`; first defines the purpose those emails are sent for (`dsr_verification`,
    /// a legal obligation) unless it is defined already.
    pub async fn with_outbound(
        mut self,
        outbound: tonic::transport::Channel,
        tokens: Arc<dyn ecrm_auth::TokenSource>,
    ) -> Result<Self, ConsentError> {
        match self.purposes.define(dsr::verification::purpose()?).await {
            Ok(_) => {}
            // An operator defined it first: theirs stands, and outbound refuses to send for it
            // unless it rests on a legal obligation or a contract.
            Err(ConsentError::AlreadyExists(_)) => tracing::warn!(
                purpose = dsr::verification::PURPOSE_KEY,
                "the verification purpose is defined otherwise; kept as it is"
            ),
            Err(error) => return Err(error),
        }
        let sender = outbound_messages::OutboundMessages::new(outbound, tokens);
        self.verification = Arc::new(self.verification.with_outbound(sender));
        self.requests = Arc::new(self.requests.with_verification(self.verification.clone()));
        Ok(self)
    }

    /// Finds subjects named by identifier in `directory` (the profiles service).
    #[must_use]
    pub fn with_directory(mut self, directory: Arc<ProfilesDirectory>) -> Self {
        self.directory = Some(directory);
        self
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
            .with(DataSubjectRequestsServer::new(dsr::grpc::RequestsService {
                requests: self.requests.clone(),
                documents: self.documents.clone(),
                directory: self.directory.clone(),
            }))
            .with(PersonalDataServer::new(
                privacy::grpc::PersonalDataService {
                    privacy: self.privacy.clone(),
                },
            ))
    }
}

/// Purpose of the key signing export manifests and erasure certificates.
const DOCUMENTS_KEY_PURPOSE: &str = "consent.documents";
/// Purpose of the checkpoint signing key derived from the master key.
const CHECKPOINT_KEY_PURPOSE: &str = "consent.ledger_checkpoints";

fn spawn_checkpoints(
    ledger: Arc<ledger::domain::Ledger>,
    interval: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(error) = ledger.checkpoint().await {
                tracing::warn!(error = %error, "cannot sign a ledger checkpoint");
            }
        }
    });
}

/// Builds the service for `ecrm_platform::serve`, verifying calls with identity's keys and,
/// when a profiles service is configured, finding subjects by identifier there and following
/// its change feed; when an outbound service is configured, emailing requesters their
/// verification codes through it.
pub async fn build(
    context: ServiceContext,
    config: ConsentConfig,
    auth: AuthConfig,
) -> Result<ServiceRoutes, ConsentError> {
    let (verifier, tokens) = auth
        .verifier_and_tokens(&context, SERVICE.name, vec!["consent.read".to_owned()])
        .await
        .map_err(|error| ConsentError::invalid(error.flag, error.reason))?;
    let mut consent = Consent::new(&context, &config, verifier)?;
    let connect = |endpoint| {
        context
            .connect(endpoint)
            .map_err(|error| ConsentError::invalid(error.flag, error.reason))
    };
    let profiles = config
        .profiles_endpoint()
        .map_err(|error| ConsentError::invalid(error.flag, error.reason))?;
    if let Some(profiles) = profiles {
        let profiles = connect(profiles)?;
        consent = consent
            .with_directory(Arc::new(ProfilesDirectory::new(
                profiles.clone(),
                tokens.clone(),
            )))
            .following_profiles(profiles, tokens.clone());
    }
    let outbound = config
        .outbound_endpoint()
        .map_err(|error| ConsentError::invalid(error.flag, error.reason))?;
    if let Some(outbound) = outbound {
        consent = consent
            .with_outbound(connect(outbound)?, tokens.clone())
            .await?;
    }
    let servers = config
        .personal_data_endpoints()
        .map_err(|error| ConsentError::invalid(error.flag, error.reason))?;
    if !servers.is_empty() {
        let servers = servers
            .into_iter()
            .map(|(name, endpoint)| {
                Ok(PersonalDataTarget {
                    name,
                    channel: connect(endpoint)?,
                })
            })
            .collect::<Result<_, ConsentError>>()?;
        consent = consent.with_personal_data(servers, tokens);
    }
    Ok(consent.routes())
}
