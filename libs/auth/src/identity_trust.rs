//! Keys and revocations fetched from the identity service over gRPC, for every service but
//! identity itself: `GetJwks` (public) and `ListRevocations` (with the service's own token).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::tokens_client::TokensClient;
use tonic::transport::Channel;

use crate::service_tokens::{AccountCredentials, ServiceTokens, bearer_request};
use crate::verifier::{SourceError, TrustSnapshot, TrustSource};

/// The service's own credentials at identity: an internal service account.
#[derive(Clone)]
pub struct ServiceCredentials {
    pub client_id: String,
    pub client_secret: String,
    /// Scopes to ask for (at least one the account holds): the token is used only to read
    /// revocations.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A [`TrustSource`] reading the identity service at `channel`.
pub struct IdentityTrust {
    channel: Channel,
    tokens: Arc<ServiceTokens>,
    /// What the service's token for identity asks for (it only reads revocations).
    scopes: Vec<String>,
}

impl std::fmt::Debug for IdentityTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityTrust")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

fn failed(status: tonic::Status) -> SourceError {
    SourceError(Box::new(status))
}

/// The audience of the service's token for identity itself.
const IDENTITY: &str = "identity";

impl IdentityTrust {
    pub fn new(channel: Channel, credentials: ServiceCredentials) -> Self {
        let tokens = Arc::new(ServiceTokens::new(
            channel.clone(),
            AccountCredentials {
                client_id: credentials.client_id,
                client_secret: credentials.client_secret,
            },
        ));
        Self::with_tokens(channel, tokens, credentials.scopes)
    }

    /// Reads identity at `channel` with a token from `tokens`, which the service also uses
    /// for its calls to other services.
    pub fn with_tokens(channel: Channel, tokens: Arc<ServiceTokens>, scopes: Vec<String>) -> Self {
        Self {
            channel,
            tokens,
            scopes,
        }
    }

    async fn snapshot(&self) -> Result<TrustSnapshot, SourceError> {
        let mut client = TokensClient::new(self.channel.clone());
        let jwks = client
            .get_jwks(pb::GetJwksRequest {})
            .await
            .map_err(failed)?
            .into_inner();
        let token = self
            .tokens
            .token(IDENTITY, &self.scopes)
            .await
            .map_err(failed)?;
        let request = bearer_request(&token, pb::ListRevocationsRequest {}).map_err(failed)?;
        let revocations = match client.list_revocations(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                // Refused: the token was revoked or its key withdrawn; log in again next time.
                // Any other failure is identity's, and the token is still good.
                if status.code() == tonic::Code::Unauthenticated {
                    self.tokens.forget(IDENTITY, &self.scopes).await;
                }
                return Err(failed(status));
            }
        };
        Ok(TrustSnapshot {
            keys: jwks
                .keys
                .into_iter()
                .filter(|key| key.alg == "EdDSA" && key.ed25519_public_key.len() == 32)
                .map(|key| (key.kid, key.ed25519_public_key))
                .collect(),
            revoked_tokens: revocations
                .revoked_tokens
                .into_iter()
                .map(|r| r.jti)
                .collect(),
            disabled_subjects: revocations.disabled_subjects,
        })
    }
}

impl TrustSource for IdentityTrust {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<TrustSnapshot, SourceError>> + Send + '_>> {
        Box::pin(self.snapshot())
    }
}
