//! What can go wrong before a call is even made.

use crate::endpoints::Service;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no URL for the {0} service: set {env} or pass it in the endpoints", env = .0.env_var())]
    NotConfigured(Service),
    #[error("the {service} URL {url:?} is not a valid http:// or https:// URL")]
    InvalidUrl { service: Service, url: String },
    #[error("cannot secure the connection to {service}")]
    Tls {
        service: Service,
        #[source]
        source: ecrm_auth::tls::TlsError,
    },
}
