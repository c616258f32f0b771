//! The consent service's errors, and the one mapping to gRPC statuses.

use ecrm_platform::DbError;
use ecrm_platform::paging::PageError;
use ecrm_platform::status::{internal_summary, invalid_argument};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// `field` is the request's path to the bad value, e.g. `purpose.channels[1]`.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A service this one depends on did not answer.
    #[error("the {service} service is unavailable")]
    Unavailable {
        service: &'static str,
        #[source]
        status: tonic::Status,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("a stored value is malformed")]
    Corrupt,
    /// The system's random number generator failed.
    #[error("a cryptographic operation failed")]
    Crypto,
}

impl ConsentError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<diesel::result::Error> for ConsentError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<PageError> for ConsentError {
    fn from(error: PageError) -> Self {
        Self::invalid(error.field, error.reason)
    }
}

impl From<ConsentError> for Status {
    fn from(error: ConsentError) -> Self {
        match error {
            ConsentError::InvalidArgument { field, reason } => invalid_argument(&field, reason),
            ConsentError::PermissionDenied(message) => Status::permission_denied(message),
            ConsentError::NotFound(_) => Status::not_found(error.to_string()),
            ConsentError::AlreadyExists(message) => Status::already_exists(message),
            ConsentError::FailedPrecondition(message) => Status::failed_precondition(message),
            ConsentError::Unavailable { service, status } => {
                tracing::warn!(service, status = %status, "a dependency failed");
                Status::unavailable(format!("the {service} service is unavailable; retry"))
            }
            ConsentError::Db(db) => db.into(),
            ConsentError::Corrupt | ConsentError::Crypto => internal_summary(&error.to_string()),
        }
    }
}
