//! One client for the whole suite: a lazily connected channel per service and the typed
//! clients of every contract on top.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_proto::ecrm::identity::v1::operators_client::OperatorsClient;
use ecrm_proto::ecrm::identity::v1::service_accounts_client::ServiceAccountsClient;
use ecrm_proto::ecrm::identity::v1::signing_keys_client::SigningKeysClient;
use ecrm_proto::ecrm::identity::v1::tokens_client::TokensClient;
use ecrm_proto::ecrm::outbound::v1::campaigns_client::CampaignsClient;
use ecrm_proto::ecrm::outbound::v1::messages_client::MessagesClient;
use ecrm_proto::ecrm::outbound::v1::suppressions_client::SuppressionsClient;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
use ecrm_proto::ecrm::profiles::v1::partner_sync_client::PartnerSyncClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_proto::ecrm::segmentation::v1::kpis_client::KpisClient;
use ecrm_proto::ecrm::segmentation::v1::rfm_client::RfmClient;
use ecrm_proto::ecrm::segmentation::v1::segments_client::SegmentsClient;
use ecrm_proto::ecrm::segmentation::v1::tiers_client::TiersClient;
use tonic::transport::{Channel, Endpoint};

use ecrm_auth::tls::ClientTls;

use crate::channel::Authorized;
use crate::credentials::Credentials;
use crate::endpoints::{Endpoints, Service};
use crate::error::ClientError;
use crate::retry::RetryPolicy;
use crate::tokens::Tokens;

/// How long connecting to a service may take before the call fails (and, if idempotent, is
/// tried again).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The suite, as one principal reaches it. Cheap to clone: clones share channels and tokens.
#[derive(Clone)]
pub struct Client {
    endpoints: Endpoints,
    channels: HashMap<Service, Channel>,
    tokens: Arc<Tokens>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// Generates one accessor per typed client: `fn name(&self) -> Result<XClient<Authorized>, _>`.
macro_rules! typed_clients {
    ($($(#[$doc:meta])* $name:ident: $client:ident on $service:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Result<$client<Authorized>, ClientError> {
                self.authorized(Service::$service).map($client::new)
            }
        )*
    };
}

impl Client {
    /// A client of every service `endpoints` names, calling as `credentials`. Nothing is
    /// dialled yet: each channel connects on its first call (and reconnects after a failure).
    /// `https://` URLs are checked against the system's CAs.
    pub fn connect(endpoints: Endpoints, credentials: Credentials) -> Result<Self, ClientError> {
        Self::connect_with_tls(endpoints, credentials, &ClientTls::default())
    }

    /// [`Client::connect`], with `tls` on `https://` URLs: the CAs the services' certificates
    /// are checked against, and the client certificate presented where the suite requires
    /// mutual TLS.
    pub fn connect_with_tls(
        endpoints: Endpoints,
        credentials: Credentials,
        tls: &ClientTls,
    ) -> Result<Self, ClientError> {
        let mut channels = HashMap::new();
        for service in Service::ALL {
            if let Some(url) = endpoints.get(service) {
                channels.insert(service, lazy_channel(service, url, tls)?);
            }
        }
        let identity = channels
            .get(&Service::Identity)
            .cloned()
            .ok_or(ClientError::NotConfigured(Service::Identity))?;
        Ok(Self {
            endpoints,
            channels,
            tokens: Arc::new(Tokens::new(identity, credentials)),
            retry: RetryPolicy::default(),
        })
    }

    /// This client with another retry policy for idempotent calls.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The token cache: to start or end a session, or keep tokens between runs.
    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    /// The authorizing channel to `service`, for a client generated elsewhere.
    pub fn authorized(&self, service: Service) -> Result<Authorized, ClientError> {
        let channel = self
            .channels
            .get(&service)
            .cloned()
            .ok_or(ClientError::NotConfigured(service))?;
        Ok(Authorized::new(
            channel,
            service.name(),
            self.tokens.clone(),
            self.retry,
        ))
    }

    /// `ecrm.privacy.v1.PersonalData` as `service` serves it.
    pub fn personal_data(
        &self,
        service: Service,
    ) -> Result<PersonalDataClient<Authorized>, ClientError> {
        self.authorized(service).map(PersonalDataClient::new)
    }

    typed_clients! {
        /// `ecrm.identity.v1.Tokens`: issuing and revoking tokens.
        identity_tokens: TokensClient on Identity;
        service_accounts: ServiceAccountsClient on Identity;
        operators: OperatorsClient on Identity;
        signing_keys: SigningKeysClient on Identity;
        profiles: ProfilesClient on Profiles;
        interactions: InteractionsClient on Profiles;
        partner_sync: PartnerSyncClient on Profiles;
        purposes: PurposesClient on Consent;
        consents: ConsentsClient on Consent;
        /// `ecrm.consent.v1.DataSubjectRequests`: access, erasure, export and the rest.
        requests: DataSubjectRequestsClient on Consent;
        rfm: RfmClient on Segmentation;
        segments: SegmentsClient on Segmentation;
        tiers: TiersClient on Segmentation;
        kpis: KpisClient on Segmentation;
        templates: TemplatesClient on Outbound;
        suppressions: SuppressionsClient on Outbound;
        messages: MessagesClient on Outbound;
        campaigns: CampaignsClient on Outbound;
    }
}

fn lazy_channel(service: Service, url: &str, tls: &ClientTls) -> Result<Channel, ClientError> {
    let invalid = || ClientError::InvalidUrl {
        service,
        url: url.to_owned(),
    };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(invalid());
    }
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|_| invalid())?;
    let endpoint = tls
        .secure(endpoint)
        .map_err(|source| ClientError::Tls { service, source })?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}
