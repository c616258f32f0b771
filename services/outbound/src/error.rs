//! The outbound service's errors, and the one mapping to gRPC statuses.

use ecrm_platform::DbError;
use ecrm_platform::status::{internal_summary, invalid_argument};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// `field` is the request's path to the bad value, e.g. `template.body`.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is sound but the system is not in a state to carry it out.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A service this one depends on did not answer; worth retrying.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("a stored value is malformed")]
    Corrupt,
}

impl OutboundError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<diesel::result::Error> for OutboundError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<OutboundError> for Status {
    fn from(error: OutboundError) -> Self {
        match error {
            OutboundError::InvalidArgument { field, reason } => invalid_argument(&field, reason),
            OutboundError::NotFound(_) => Status::not_found(error.to_string()),
            OutboundError::FailedPrecondition(reason) => Status::failed_precondition(reason),
            OutboundError::Unavailable(reason) => Status::unavailable(reason),
            OutboundError::Db(db) => db.into(),
            OutboundError::Corrupt => internal_summary(&error.to_string()),
        }
    }
}
