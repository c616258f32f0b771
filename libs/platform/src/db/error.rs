//! Database errors classified once, so services match on variants, never on message text.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A failed unit of database work.
///
/// `Display` never includes what PostgreSQL said about the data (its DETAIL carries the
/// offending values, which may be personal data); only constraint names, which the schema
/// defines, appear.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("record not found")]
    NotFound,
    #[error("unique constraint {constraint} violated")]
    UniqueViolation { constraint: String },
    #[error("foreign key constraint {constraint} violated")]
    ForeignKeyViolation { constraint: String },
    #[error("check constraint {constraint} violated")]
    CheckViolation { constraint: String },
    /// A serializable transaction lost a conflict; the whole unit of work may be retried.
    #[error("serialization failure")]
    SerializationFailure,
    #[error("no database connection available")]
    Unavailable(#[source] diesel::r2d2::PoolError),
    #[error("cannot connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    #[error("database query failed")]
    Query(#[source] DieselError),
    #[error("database work panicked")]
    Panicked,
}

impl DbError {
    /// True when the same unit of work may succeed if run again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::SerializationFailure | Self::Unavailable(_))
    }

    /// The constraint a violation names, for mapping to a domain error.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Self::UniqueViolation { constraint }
            | Self::ForeignKeyViolation { constraint }
            | Self::CheckViolation { constraint } => Some(constraint),
            _ => None,
        }
    }
}

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => Self::NotFound,
            DieselError::DatabaseError(kind, ref info) => {
                let constraint = info.constraint_name().unwrap_or_default().to_owned();
                match kind {
                    DatabaseErrorKind::UniqueViolation => Self::UniqueViolation { constraint },
                    DatabaseErrorKind::ForeignKeyViolation => {
                        Self::ForeignKeyViolation { constraint }
                    }
                    DatabaseErrorKind::CheckViolation => Self::CheckViolation { constraint },
                    DatabaseErrorKind::SerializationFailure => Self::SerializationFailure,
                    _ => Self::Query(error),
                }
            }
            other => Self::Query(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(error)
    }
}

impl From<diesel::ConnectionError> for DbError {
    fn from(error: diesel::ConnectionError) -> Self {
        Self::Connect(error)
    }
}
