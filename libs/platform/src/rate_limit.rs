//! Per-principal rate limits on the suite's expensive RPCs (whole-base computations, ledger
//! verification, mail to a person, exports): each principal has its own allowance for each
//! listed method on each server, refused beyond it with RESOURCE_EXHAUSTED and the time to
//! wait (`google.rpc.RetryInfo`).

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ecrm_auth::Principal;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt as _};

/// A method's allowance for each principal: `burst` calls at once, then `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub per_minute: u32,
    pub burst: u32,
}

const fn allowance(per_minute: u32, burst: u32) -> Allowance {
    Allowance { per_minute, burst }
}

/// The expensive methods and their allowances: far above what a person or a well-behaved
/// service needs, short of letting one principal monopolise a server.
pub const EXPENSIVE: &[(&str, Allowance)] = &[
    // Scores every customer from every order.
    ("/ecrm.segmentation.v1.Rfm/ComputeRfm", allowance(12, 5)),
    // Evaluates the rule over every customer.
    (
        "/ecrm.segmentation.v1.Segments/DefineSegment",
        allowance(60, 20),
    ),
    // Aggregates over the whole projection.
    ("/ecrm.segmentation.v1.Kpis/GetKpis", allowance(120, 30)),
    // Re-hashes every chain of the ledger.
    ("/ecrm.consent.v1.Consents/VerifyLedger", allowance(12, 5)),
    // Each sends mail to a person.
    (
        "/ecrm.consent.v1.DataSubjectRequests/SubmitRequest",
        allowance(120, 30),
    ),
    (
        "/ecrm.consent.v1.DataSubjectRequests/ResendVerificationCode",
        allowance(12, 5),
    ),
    // Streams a whole export bundle.
    (
        "/ecrm.consent.v1.DataSubjectRequests/GetExport",
        allowance(60, 10),
    ),
    // Starts mailing a whole audience.
    (
        "/ecrm.outbound.v1.Campaigns/StartCampaign",
        allowance(60, 10),
    ),
];

/// One keyed limiter per listed method, keyed by the principal's subject.
#[derive(Clone)]
pub struct RateLimits {
    limiters: Arc<HashMap<String, DefaultKeyedRateLimiter<String>>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("methods", &self.limiters.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RateLimits {
    /// Limits on `methods` (`/package.Service/Method` and its allowance); an allowance of zero
    /// lifts the method's limit.
    pub fn new<'a>(methods: impl IntoIterator<Item = (&'a str, Allowance)>) -> Self {
        let limiters = methods
            .into_iter()
            .filter_map(|(path, allowance)| {
                let per_minute = NonZeroU32::new(allowance.per_minute)?;
                let burst = NonZeroU32::new(allowance.burst).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::per_minute(per_minute).allow_burst(burst);
                Some((path.to_owned(), RateLimiter::keyed(quota)))
            })
            .collect();
        Self {
            limiters: Arc::new(limiters),
        }
    }

    /// The suite's limits: [`EXPENSIVE`].
    pub fn suite() -> Self {
        Self::new(EXPENSIVE.iter().copied())
    }

    /// Takes one call of `principal` to `path` from its allowance; how long to wait when none
    /// is left.
    pub fn take(&self, path: &str, principal: &str) -> Result<(), Duration> {
        let Some(limiter) = self.limiters.get(path) else {
            return Ok(());
        };
        limiter
            .check_key(&principal.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Refuses a principal's call to a listed method beyond its allowance; below the auth layer,
/// which has put the principal in the request.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limits: RateLimits,
}

impl RateLimitLayer {
    pub fn new(limits: RateLimits) -> Self {
        Self { limits }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limits: self.limits.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimited<S> {
    inner: S,
    limits: RateLimits,
}

impl<S, B> tower::Service<http::Request<B>> for RateLimited<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let refused = request
            .extensions()
            .get::<Principal>()
            .and_then(|principal| {
                self.limits
                    .take(request.uri().path(), &principal.subject)
                    .err()
            });
        match refused {
            None => Box::pin(self.inner.call(request)),
            Some(wait) => {
                tracing::info!(
                    method = request.uri().path(),
                    ?wait,
                    "call over its rate limit"
                );
                // Whole seconds: a caller waiting less would be refused again.
                let retry = Duration::from_secs(wait.as_secs() + 1);
                let status = tonic::Status::with_error_details(
                    Code::ResourceExhausted,
                    format!(
                        "too many calls of this method; retry in {} s",
                        retry.as_secs()
                    ),
                    ErrorDetails::with_retry_info(Some(retry)),
                );
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_principal_has_its_own_allowance_of_each_listed_method() {
        let limits = RateLimits::new([("/a.S/M", allowance(60, 2))]);
        assert!(limits.take("/a.S/M", "alice").is_ok());
        assert!(limits.take("/a.S/M", "alice").is_ok());
        let wait = limits.take("/a.S/M", "alice").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limits.take("/a.S/M", "bob").is_ok());
        for _ in 0..100 {
            assert!(limits.take("/a.S/Other", "alice").is_ok());
        }
    }

    #[test]
    fn an_allowance_of_zero_lifts_the_limit() {
        let limits = RateLimits::new([("/a.S/M", allowance(0, 0))]);
        for _ in 0..100 {
            assert!(limits.take("/a.S/M", "alice").is_ok());
        }
    }

    #[test]
    fn every_limited_method_is_a_method_of_the_access_table() {
        for (path, _) in EXPENSIVE {
            assert!(
                ecrm_auth::methods::access(path).is_some(),
                "{path} is not a method of the suite"
            );
        }
    }
}
