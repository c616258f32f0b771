//! A service's own tokens, issued by identity for its internal account (client credentials):
//! one per audience and scopes, kept until shortly before it expires.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::tokens_client::TokensClient;
use tonic::transport::Channel;

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// When a token's lifetime cannot be read (clock skew), it is renewed after this long.
const FALLBACK_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The token for one audience and scopes, and when to renew it and when it stops being usable.
struct CachedToken {
    token: String,
    renew_at: Instant,
    expires_at: Instant,
}

/// A service's internal account at identity.
#[derive(Clone)]
pub struct AccountCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// `message` as a request to another service, carrying `token` as its bearer credential and
/// the current trace context, so the callee's spans join the caller's trace.
pub fn bearer_request<T>(token: &str, message: T) -> Result<tonic::Request<T>, tonic::Status> {
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| tonic::Status::internal("the token is not a valid header value"))?;
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", value);
    crate::inject_trace_context(request.metadata_mut());
    Ok(request)
}

/// Where a service gets the bearer tokens of its calls to other services.
pub trait TokenSource: Send + Sync + 'static {
    /// A token for `audience` carrying `scopes`.
    fn token<'a>(
        &'a self,
        audience: &'a str,
        scopes: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<String, tonic::Status>> + Send + 'a>>;
}

impl TokenSource for ServiceTokens {
    fn token<'a>(
        &'a self,
        audience: &'a str,
        scopes: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<String, tonic::Status>> + Send + 'a>> {
        Box::pin(ServiceTokens::token(self, audience, scopes))
    }
}

/// Tokens for the service's calls to other services, logged in for at identity on `channel`.
pub struct ServiceTokens {
    channel: Channel,
    credentials: AccountCredentials,
    cache: tokio::sync::Mutex<HashMap<(String, Vec<String>), CachedToken>>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl ServiceTokens {
    pub fn new(channel: Channel, credentials: AccountCredentials) -> Self {
        Self {
            channel,
            credentials,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A token for `audience` carrying `scopes`, renewed shortly before it expires. A failed
    /// renewal keeps the current token while it lasts: identity being slow is no reason to log
    /// in again and again.
    pub async fn token(&self, audience: &str, scopes: &[String]) -> Result<String, tonic::Status> {
        let key = (audience.to_owned(), scopes.to_vec());
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(current) = cache.get(&key)
            && now < current.renew_at
        {
            return Ok(current.token.clone());
        }
        match self.log_in(audience, scopes).await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                cache.insert(key, fresh);
                Ok(token)
            }
            Err(status) => match cache.get(&key) {
                Some(current) if now < current.expires_at => Ok(current.token.clone()),
                _ => Err(status),
            },
        }
    }

    /// Drops the token for `audience` and `scopes`, refused by its audience: the next call logs
    /// in again.
    pub async fn forget(&self, audience: &str, scopes: &[String]) {
        self.cache
            .lock()
            .await
            .remove(&(audience.to_owned(), scopes.to_vec()));
    }

    async fn log_in(
        &self,
        audience: &str,
        scopes: &[String],
    ) -> Result<CachedToken, tonic::Status> {
        let mut request = tonic::Request::new(pb::IssueTokenRequest {
            grant: Some(pb::issue_token_request::Grant::ClientCredentials(
                pb::ClientCredentials {
                    client_id: self.credentials.client_id.clone(),
                    client_secret: self.credentials.client_secret.clone(),
                },
            )),
            scopes: scopes.to_vec(),
            audience: audience.to_owned(),
            start_session: false,
        });
        // A token fetched for a call is part of that call's trace.
        crate::inject_trace_context(request.metadata_mut());
        let issued = TokensClient::new(self.channel.clone())
            .issue_token(request)
            .await?
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
}
