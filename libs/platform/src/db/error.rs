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
    /// The server closed the connection (restart, failover); the pool replaces it.
    #[error("database connection lost")]
    ConnectionLost,
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
        matches!(
            self,
            Self::SerializationFailure | Self::Unavailable(_) | Self::ConnectionLost
        )
    }

    /// A description safe for logs: the kind of failure and the schema objects it names, never
    /// PostgreSQL's message or detail, which quote the offending values (personal data).
    pub fn log_summary(&self) -> String {
        match self {
            Self::Query(DieselError::DatabaseError(kind, info)) => format!(
                "database error {kind:?} (table {}, column {}, constraint {})",
                info.table_name().unwrap_or("-"),
                info.column_name().unwrap_or("-"),
                info.constraint_name().unwrap_or("-"),
            ),
            Self::Query(other) => format!("diesel error: {}", diesel_error_kind(other)),
            other => other.to_string(),
        }
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
                    DatabaseErrorKind::ClosedConnection => Self::ConnectionLost,
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

/// The variant of a diesel error, without its text.
fn diesel_error_kind(error: &DieselError) -> &'static str {
    match error {
        DieselError::NotFound => "not found",
        DieselError::InvalidCString(_) => "invalid c string",
        DieselError::DatabaseError(..) => "database error",
        DieselError::QueryBuilderError(_) => "query builder",
        DieselError::DeserializationError(_) => "deserialization",
        DieselError::SerializationError(_) => "serialization",
        DieselError::RollbackErrorOnCommit { .. } => "rollback after failed commit",
        DieselError::RollbackTransaction => "rollback",
        DieselError::AlreadyInTransaction => "already in transaction",
        DieselError::NotInTransaction => "not in transaction",
        DieselError::BrokenTransactionManager => "broken transaction manager",
        _ => "other",
    }
}
