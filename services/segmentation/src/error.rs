//! The segmentation service's errors, and the one mapping to gRPC statuses.

use ecrm_platform::DbError;
use ecrm_platform::status::{internal_summary, invalid_argument};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum SegmentationError {
    /// `field` is the request's path to the bad value, e.g. `subject_id`.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("a stored value is malformed")]
    Corrupt,
}

impl SegmentationError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<diesel::result::Error> for SegmentationError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<ecrm_platform::paging::PageError> for SegmentationError {
    fn from(error: ecrm_platform::paging::PageError) -> Self {
        Self::invalid(error.field, error.reason)
    }
}

impl From<SegmentationError> for Status {
    fn from(error: SegmentationError) -> Self {
        match error {
            SegmentationError::InvalidArgument { field, reason } => {
                invalid_argument(&field, reason)
            }
            SegmentationError::NotFound(_) => Status::not_found(error.to_string()),
            SegmentationError::AlreadyExists(message) => Status::already_exists(message),
            SegmentationError::FailedPrecondition(message) => Status::failed_precondition(message),
            SegmentationError::Db(db) => db.into(),
            SegmentationError::Corrupt => internal_summary(&error.to_string()),
        }
    }
}
