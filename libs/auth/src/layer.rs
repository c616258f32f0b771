//! The tower layer that authenticates and authorizes every RPC before it reaches a handler.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::AuthError;
use crate::methods::{self, Access};
use crate::verifier::Verifier;

/// Wraps a server's routes: each call is checked against [`methods::access`]; on success the
/// [`crate::Principal`] is put in the request's extensions.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    verifier: Verifier,
}

impl AuthLayer {
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    verifier: Verifier,
}

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was polled ready handles this call; the clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            match authorize(&verifier, &mut request).await {
                Ok(()) => inner.call(request).await,
                Err(error) => {
                    tracing::info!(reason = %error, "call refused");
                    Ok(tonic::Status::from(error).into_http())
                }
            }
        })
    }
}

async fn authorize<B>(
    verifier: &Verifier,
    request: &mut http::Request<B>,
) -> Result<(), AuthError> {
    let required = match methods::access(request.uri().path()).ok_or(AuthError::MethodNotListed)? {
        Access::Open => return Ok(()),
        Access::Authenticated => None,
        Access::Scope(scope) => Some(scope),
    };
    let token = bearer_token(request.headers()).ok_or(AuthError::MissingToken)?;
    let principal = verifier.authenticate(token).await?;
    if let Some(scope) = required
        && !principal.scopes.contains(scope)
    {
        return Err(AuthError::MissingScope(scope.as_str()));
    }
    request.extensions_mut().insert(principal);
    Ok(())
}

/// The token of an `authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_tokens_are_read() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert("authorization", "Bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc.def.ghi"));
        headers.insert("authorization", "bearer  xyz ".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("xyz"));
        headers.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
