//! The channel every typed client of [`crate::Client`] sends through: it adds the bearer token
//! the method needs and the trace context, and sends idempotent calls again while the service
//! is unavailable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ecrm_auth::Access;
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tonic::transport::Channel;
use tower::{Service, ServiceExt};

use crate::methods;
use crate::retry::RetryPolicy;
use crate::tokens::Tokens;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A channel to one service that authorizes each call. tonic turns a [`tonic::Status`] this
/// returns as an error back into that status, so a refused login reaches the caller as
/// UNAUTHENTICATED, not as a transport error.
#[derive(Clone)]
pub struct Authorized {
    inner: Channel,
    audience: &'static str,
    tokens: Arc<Tokens>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Authorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorized")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// What a call needs of the token cache.
enum Need {
    /// An open method: no token.
    Nothing,
    /// Any valid token for the service.
    AnyToken,
    /// A token carrying this scope.
    Scope(Vec<String>),
}

impl Authorized {
    pub(crate) fn new(
        inner: Channel,
        audience: &'static str,
        tokens: Arc<Tokens>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            inner,
            audience,
            tokens,
            retry,
        }
    }

    async fn send(self, request: http::Request<Body>) -> Result<http::Response<Body>, BoxError> {
        let path = request.uri().path().to_owned();
        let facts = methods::facts(&path);
        let need = match ecrm_auth::methods::access(&path) {
            Some(Access::Open) => Need::Nothing,
            Some(Access::Authenticated) => Need::AnyToken,
            Some(Access::Scope(scope)) => Need::Scope(vec![scope.to_string()]),
            None => {
                return Err(Box::new(tonic::Status::unimplemented(format!(
                    "{path} is not a method of the suite"
                ))));
            }
        };
        let (mut parts, body) = request.into_parts();
        // The current span's trace context, written as every call between services writes it.
        let mut metadata =
            tonic::metadata::MetadataMap::from_headers(std::mem::take(&mut parts.headers));
        ecrm_auth::inject_trace_context(&mut metadata);
        parts.headers = metadata.into_headers();
        if facts.client_streaming {
            // A stream cannot be sent twice: one attempt, as it comes.
            self.authorize(&mut parts.headers, &need).await?;
            let mut inner = self.inner.clone();
            let request = http::Request::from_parts(parts, body);
            return Ok(inner.ready().await?.call(request).await?);
        }
        let bytes = body.collect().await?.to_bytes();
        let attempts = if facts.idempotent {
            self.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut attempt = 0;
        let mut renewed_token = false;
        loop {
            attempt += 1;
            let mut headers = parts.headers.clone();
            self.authorize(&mut headers, &need).await?;
            let mut request = http::Request::new(Body::new(Full::new(bytes.clone())));
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = parts.uri.clone();
            *request.version_mut() = parts.version;
            *request.headers_mut() = headers;
            *request.extensions_mut() = parts.extensions.clone();
            let mut inner = self.inner.clone();
            let outcome = inner.ready().await?.call(request).await;
            match outcome {
                Ok(response) => match grpc_status(&response) {
                    // The token was refused before the method ran (revoked, or its key
                    // retired): safe to send once more with a new one, whatever the method.
                    Some(tonic::Code::Unauthenticated)
                        if !renewed_token && matches!(need, Need::Scope(_)) =>
                    {
                        if let Need::Scope(scopes) = &need {
                            self.tokens.forget(self.audience, scopes).await;
                        }
                        renewed_token = true;
                        attempt -= 1;
                    }
                    Some(tonic::Code::Unavailable) if attempt < attempts => {
                        tracing::debug!(path, attempt, "service unavailable, retrying");
                        tokio::time::sleep(self.retry.delay(attempt)).await;
                    }
                    _ => return Ok(response),
                },
                Err(error) if attempt < attempts => {
                    tracing::debug!(path, attempt, error = %error, "call failed, retrying");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn authorize(&self, headers: &mut http::HeaderMap, need: &Need) -> Result<(), BoxError> {
        let token = match need {
            Need::Nothing => return Ok(()),
            Need::Scope(scopes) => self.tokens.token(self.audience, scopes).await?,
            Need::AnyToken => self.tokens.any_for(self.audience).await.ok_or_else(|| {
                tonic::Status::failed_precondition(format!(
                    "no token for {} yet: make a call that needs a scope there first",
                    self.audience
                ))
            })?,
        };
        let value = http::HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| tonic::Status::internal("the token is not a valid header value"))?;
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(())
    }
}

/// The status of a response that carries it in its headers (a call refused or failed at once).
fn grpc_status(response: &http::Response<Body>) -> Option<tonic::Code> {
    let value = response.headers().get("grpc-status")?.to_str().ok()?;
    Some(tonic::Code::from_i32(value.parse().ok()?))
}

impl Service<http::Request<Body>> for Authorized {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}
