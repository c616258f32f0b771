//! Keys and revocations fetched from the identity service over gRPC, for every service but
//! identity itself: `GetJwks` (public) and `ListRevocations` (with the service's own token).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::tokens_client::TokensClient;
use tonic::transport::Channel;

use crate::verifier::{SourceError, TrustSnapshot, TrustSource};

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// When a token's lifetime cannot be read (clock skew), it is renewed after this long.
const FALLBACK_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The service's current token, and when to renew it and when it stops being usable.
struct CachedToken {
    token: String,
    renew_at: Instant,
    expires_at: Instant,
}

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
    credentials: ServiceCredentials,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for IdentityTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityTrust")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

fn failed(status: tonic::Status) -> SourceError {
    SourceError(Box::new(status))
}

impl IdentityTrust {
    pub fn new(channel: Channel, credentials: ServiceCredentials) -> Self {
        Self {
            channel,
            credentials,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// The service's token for identity, renewed shortly before it expires. A failed renewal
    /// keeps the current token while it lasts: identity being slow is no reason to log in again
    /// and again.
    async fn token(&self) -> Result<String, SourceError> {
        let mut cached = self.token.lock().await;
        let now = Instant::now();
        if let Some(current) = cached.as_ref()
            && now < current.renew_at
        {
            return Ok(current.token.clone());
        }
        match self.log_in().await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *cached = Some(fresh);
                Ok(token)
            }
            Err(error) => match cached.as_ref() {
                Some(current) if now < current.expires_at => Ok(current.token.clone()),
                _ => Err(error),
            },
        }
    }

    async fn log_in(&self) -> Result<CachedToken, SourceError> {
        let issued = TokensClient::new(self.channel.clone())
            .issue_token(pb::IssueTokenRequest {
                grant: Some(pb::issue_token_request::Grant::ClientCredentials(
                    pb::ClientCredentials {
                        client_id: self.credentials.client_id.clone(),
                        client_secret: self.credentials.client_secret.clone(),
                    },
                )),
                scopes: self.credentials.scopes.clone(),
                audience: "identity".to_owned(),
            })
            .await
            .map_err(failed)?
            .into_inner();
        let lifetime = issued
            .expires_at
            .and_then(|at| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                u64::try_from(at.seconds).ok()?.checked_sub(now)
            })
            .map_or(FALLBACK_LIFETIME, Duration::from_secs);
        let now = Instant::now();
        Ok(CachedToken {
            token: issued.access_token,
            renew_at: now + lifetime.saturating_sub(RENEW_BEFORE),
            expires_at: now + lifetime,
        })
    }

    async fn snapshot(&self) -> Result<TrustSnapshot, SourceError> {
        let mut client = TokensClient::new(self.channel.clone());
        let jwks = client
            .get_jwks(pb::GetJwksRequest {})
            .await
            .map_err(failed)?
            .into_inner();
        let mut request = tonic::Request::new(pb::ListRevocationsRequest {});
        let bearer = format!("Bearer {}", self.token().await?)
            .parse()
            .map_err(|e| SourceError(Box::new(e)))?;
        request.metadata_mut().insert("authorization", bearer);
        let revocations = match client.list_revocations(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                // Refused: the token was revoked or its key withdrawn; log in again next time.
                // Any other failure is identity's, and the token is still good.
                if status.code() == tonic::Code::Unauthenticated {
                    *self.token.lock().await = None;
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
