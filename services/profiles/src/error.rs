//! The profiles service's errors, and the one mapping to gRPC statuses.

use ecrm_platform::DbError;
use ecrm_platform::paging::PageError;
use ecrm_platform::status::{internal, internal_summary, invalid_argument};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum ProfilesError {
    /// `field` is the request's path to the bad value, e.g. `identifiers[1].value`.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// Also what a partner gets for a subject it may not reach: it cannot tell the two apart.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// A stored value does not open with the subject's key: corruption or a wrong master key.
    #[error("a stored value cannot be decrypted")]
    Crypto(#[from] ecrm_crypto::CryptoError),
    #[error("a stored value is malformed")]
    Corrupt,
    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),
    /// A service this one depends on did not answer.
    #[error("the {service} service is unavailable")]
    Unavailable {
        service: &'static str,
        #[source]
        status: tonic::Status,
    },
}

impl ProfilesError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with its field named inside `prefix`, e.g. `identifiers[2].` + `value`.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Self::InvalidArgument { field, reason } => Self::InvalidArgument {
                field: format!("{prefix}{field}"),
                reason,
            },
            other => other,
        }
    }
}

impl From<diesel::result::Error> for ProfilesError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<PageError> for ProfilesError {
    fn from(error: PageError) -> Self {
        Self::invalid(error.field, error.reason)
    }
}

impl From<ProfilesError> for Status {
    fn from(error: ProfilesError) -> Self {
        match error {
            ProfilesError::InvalidArgument { field, reason } => invalid_argument(&field, reason),
            ProfilesError::PermissionDenied(message) => Status::permission_denied(message),
            ProfilesError::NotFound(_) => Status::not_found(error.to_string()),
            ProfilesError::FailedPrecondition(message) => Status::failed_precondition(message),
            ProfilesError::AlreadyExists(message) => Status::already_exists(message),
            ProfilesError::Db(db) => db.into(),
            ProfilesError::Task(_) => internal(&error),
            ProfilesError::Unavailable { service, status } => {
                tracing::warn!(service, status = %status, "a dependency failed");
                Status::unavailable(format!("the {service} service is unavailable; retry"))
            }
            ProfilesError::Crypto(_) | ProfilesError::Corrupt => {
                internal_summary(&error.to_string())
            }
        }
    }
}
