//! What subjects share with partners, as the consent service says: a subject shares with
//! partner P when `CheckConsent` allows purpose `share:P` on the partner channel, and shares the
//! fields the purpose's data categories name.

use std::collections::HashMap;
use std::sync::Arc;

use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use futures::future::BoxFuture;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::ProfilesError;
use crate::sharing::{SharedFields, SharingPolicy};

const CONSENT: &str = "consent";
/// Most subjects one `CheckConsent` may name.
const MAX_CHECK: usize = 10_000;

/// The policy backed by the consent service at `consent`, called with `tokens`.
pub struct ConsentSharing {
    consent: Channel,
    tokens: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for ConsentSharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentSharing").finish_non_exhaustive()
    }
}

fn unavailable(status: tonic::Status) -> ProfilesError {
    ProfilesError::Unavailable {
        service: CONSENT,
        status,
    }
}

impl ConsentSharing {
    pub fn new(consent: Channel, tokens: Arc<dyn TokenSource>) -> Self {
        Self { consent, tokens }
    }

    fn request<T>(token: &str, message: T) -> Result<tonic::Request<T>, ProfilesError> {
        bearer_request(token, message).map_err(unavailable)
    }

    async fn ask(
        &self,
        partner: &str,
        subjects: &[Uuid],
    ) -> Result<HashMap<Uuid, SharedFields>, ProfilesError> {
        let scopes = ["consent.read".to_owned()];
        let token = self
            .tokens
            .token(CONSENT, &scopes)
            .await
            .map_err(unavailable)?;
        let purpose_key = format!("share:{partner}");
        let purpose = match PurposesClient::new(self.consent.clone())
            .get_purpose(Self::request(
                &token,
                pb::GetPurposeRequest {
                    key: purpose_key.clone(),
                },
            )?)
            .await
        {
            Ok(response) => response.into_inner().purpose.unwrap_or_default(),
            // No such purpose: no one was ever asked to share with this partner.
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(HashMap::new()),
            Err(status) => return Err(unavailable(status)),
        };
        let fields = SharedFields::new(purpose.data_categories);
        let mut shared = HashMap::new();
        if fields.is_empty() {
            return Ok(shared);
        }
        let mut client = ConsentsClient::new(self.consent.clone());
        for chunk in subjects.chunks(MAX_CHECK) {
            let decisions = client
                .check_consent(Self::request(
                    &token,
                    pb::CheckConsentRequest {
                        purpose_key: purpose_key.clone(),
                        channel: pb::Channel::Partner.into(),
                        subject_ids: chunk.iter().map(Uuid::to_string).collect(),
                    },
                )?)
                .await
                .map_err(unavailable)?
                .into_inner()
                .decisions;
            // Only an explicit grant shares, whatever else CheckConsent would allow.
            let granted = decisions
                .into_iter()
                .filter(|d| d.allowed && d.reason() == pb::Reason::Granted);
            for decision in granted {
                if let Ok(subject) = decision.subject_id.parse() {
                    shared.insert(subject, fields.clone());
                }
            }
        }
        Ok(shared)
    }
}

impl SharingPolicy for ConsentSharing {
    fn shared<'a>(
        &'a self,
        partner: &'a str,
        subjects: &'a [Uuid],
    ) -> BoxFuture<'a, Result<HashMap<Uuid, SharedFields>, ProfilesError>> {
        Box::pin(self.ask(partner, subjects))
    }
}
