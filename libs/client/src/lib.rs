//! Typed gRPC clients of the eCRM suite for platform teams.
//!
//! One [`Client`] reaches every service it is given an endpoint for. Each call gets a bearer
//! token for the service it goes to, carrying exactly the scope that method needs (looked up in
//! the suite's method table); tokens come from identity for the [`Credentials`] given, are
//! cached, and are renewed shortly before they expire. Calls the contracts mark idempotent
//! (`option idempotency_level`) are retried with exponential backoff and jitter when a service
//! is unavailable; every call carries the current span's W3C trace context.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use ecrm_client::proto::common::v1::{SubjectRef, subject_ref};
//! use ecrm_client::proto::profiles::v1::GetProfileRequest;
//! use ecrm_client::{Client, Credentials, Endpoints, for_purpose};
//!
//! let client = Client::connect(
//!     Endpoints::from_env()?,
//!     Credentials::service_account("orders-service", std::env::var("ORDERS_CLIENT_SECRET")?),
//! )?;
//! let subject = SubjectRef {
//!     subject: Some(subject_ref::Subject::SubjectId("0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10".into())),
//! };
//! let profile = client
//!     .profiles()?
//!     .get_profile(for_purpose(GetProfileRequest { subject: Some(subject) }, "customer_service"))
//!     .await?
//!     .into_inner();
//! # Ok(()) }
//! ```

mod channel;
mod client;
mod credentials;
mod endpoints;
mod error;
mod methods;
mod retry;
mod tokens;

pub use self::channel::Authorized;
pub use self::client::Client;
pub use self::credentials::Credentials;
pub use self::endpoints::{Endpoints, Service};
pub use self::error::ClientError;
pub use self::retry::RetryPolicy;
pub use self::tokens::{CachedToken, Session, Tokens};
/// What a client trusts and presents on `https://` URLs (mutual TLS): see [`Client::connect_with_tls`].
pub use ecrm_auth::tls::{ClientTls, TlsError};

/// The generated contracts, re-exported so a platform team needs one dependency.
pub mod proto {
    pub use ecrm_proto::ecrm::*;
}

/// `message` as a request declaring `purpose` (`x-ecrm-purpose`), as every read of personal
/// data must: the owning service records it in its access log and checks restrictions against
/// it. A purpose that is not valid metadata is left out, and the service says so.
pub fn for_purpose<T>(message: T, purpose: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = purpose.parse() {
        request.metadata_mut().insert("x-ecrm-purpose", value);
    }
    request
}
