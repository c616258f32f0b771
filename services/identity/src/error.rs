//! The identity service's errors, and the one mapping to gRPC statuses.

use std::time::Duration;

use ecrm_platform::DbError;
use ecrm_platform::status::{internal, internal_summary, invalid_argument};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// Wrong or unknown credentials; the message never says which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh token that is unknown, ended or expired, or whose principal is disabled; the
    /// message never says which.
    #[error("the session has ended or is unknown: log in again")]
    SessionEnded,
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("too many failed attempts, retry in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "the master key does not open the stored signing keys: start with the key they were sealed with"
    )]
    WrongMasterKey,
    #[error("cannot seal or open a signing key")]
    Crypto(#[from] ecrm_crypto::CryptoError),
    #[error(transparent)]
    Sign(#[from] ecrm_auth::SignError),
    #[error("password hashing failed")]
    Hashing,
    #[error("too many logins at once, retry shortly")]
    Busy,
    #[error("the system random generator failed")]
    Random,
    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),
    /// A credential file of `provision-accounts` cannot be read or written.
    #[error("cannot read or write {path}")]
    AccountFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not a credential file (ECRM_CLIENT_ID and ECRM_CLIENT_SECRET): move it away to write a new one"
    )]
    AccountFileInvalid(std::path::PathBuf),
}

impl IdentityError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl From<ecrm_platform::paging::PageError> for IdentityError {
    fn from(error: ecrm_platform::paging::PageError) -> Self {
        Self::InvalidArgument {
            field: error.field,
            reason: error.reason,
        }
    }
}

impl From<diesel::result::Error> for IdentityError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<IdentityError> for Status {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::InvalidArgument { field, reason } => invalid_argument(field, reason),
            IdentityError::InvalidCredentials | IdentityError::SessionEnded => {
                Status::unauthenticated(error.to_string())
            }
            IdentityError::PermissionDenied(message) => Status::permission_denied(message),
            IdentityError::NotFound(_) => Status::not_found(error.to_string()),
            IdentityError::AlreadyExists(_) => Status::already_exists(error.to_string()),
            IdentityError::FailedPrecondition(message) => Status::failed_precondition(message),
            IdentityError::Throttled { retry_after } => Status::with_error_details(
                Code::ResourceExhausted,
                error.to_string(),
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            IdentityError::Busy => Status::with_error_details(
                Code::ResourceExhausted,
                error.to_string(),
                ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
            ),
            IdentityError::Db(db) => db.into(),
            IdentityError::Sign(_) | IdentityError::Task(_) => internal(&error),
            // Files of the command line only, never reached by a call: no path leaves here.
            IdentityError::AccountFile { .. } | IdentityError::AccountFileInvalid(_) => {
                internal_summary("credential file")
            }
            IdentityError::Crypto(_)
            | IdentityError::WrongMasterKey
            | IdentityError::Hashing
            | IdentityError::Random => internal_summary(&error.to_string()),
        }
    }
}
