//! Building `tonic::Status` values: field-named INVALID_ARGUMENT, and INTERNAL errors that are
//! logged with a reference but never echo database text or personal data to the caller.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::db::DbError;

/// INVALID_ARGUMENT naming `field` both in the message and in a `google.rpc.BadRequest`
/// field violation, so people and programs can both tell what to fix.
pub fn invalid_argument(field: &str, description: impl Into<String>) -> Status {
    // Both may quote the request (a key, a path): kept short, so that the answer's headers
    // stay within what HTTP/2 peers accept (16 KiB by default) whatever was sent.
    let field = shortened(field, MAX_FIELD_CHARS);
    let description = shortened(&description.into(), MAX_DESCRIPTION_CHARS);
    let field = field.as_str();
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid {field}: {description}"),
        ErrorDetails::with_bad_request_violation(field, description),
    )
}

/// The longest field path and description an INVALID_ARGUMENT carries.
const MAX_FIELD_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 500;

/// `text`, cut to `max` characters with an ellipsis when longer.
fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// INTERNAL with an opaque reference. The error is logged with the same reference; callers see
/// only the reference, never the error's text. The error's text must hold no personal data:
/// database errors go through [`internal_summary`] with [`DbError::log_summary`].
pub fn internal(error: &(dyn std::error::Error + 'static)) -> Status {
    internal_summary(&ErrorChain(error).to_string())
}

/// INTERNAL with an opaque reference, logging `summary` with it.
pub fn internal_summary(summary: &str) -> Status {
    let reference = uuid::Uuid::now_v7();
    tracing::error!(error.reference = %reference, error = summary, "internal error");
    Status::internal(format!("internal error (reference {reference})"))
}

/// Displays `error` with every error in its `source()` chain, joined by ": ".
pub fn chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> impl std::fmt::Display + 'a {
    ErrorChain(error)
}

struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// The default mapping of database failures. Services map the variants that mean something in
/// their domain (a unique violation on an identifier, say) before falling back to this.
impl From<DbError> for Status {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotFound => Status::not_found("not found"),
            DbError::UniqueViolation { .. } => Status::already_exists("already exists"),
            DbError::ForeignKeyViolation { .. } | DbError::CheckViolation { .. } => {
                Status::failed_precondition("the change conflicts with stored data")
            }
            DbError::SerializationFailure => Status::aborted("concurrent update, retry the call"),
            DbError::Unavailable(_) | DbError::Connect(_) | DbError::ConnectionLost => {
                tracing::warn!(error = %ErrorChain(&error), "database unavailable");
                Status::unavailable("database unavailable, retry later")
            }
            DbError::Query(_) | DbError::Panicked => internal_summary(&error.log_summary()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_the_field_in_message_and_details() {
        let status = invalid_argument("email", "must contain @");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("email"));
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field, "email");
        assert_eq!(violation.description, "must contain @");
    }

    #[test]
    fn quoted_input_is_shortened_so_the_answer_fits_its_headers() {
        let key = "é".repeat(5_000);
        let status = invalid_argument(
            &format!("attributes.custom[{key:?}]"),
            format!("{key:?} is not an attribute"),
        );
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field.chars().count(), MAX_FIELD_CHARS + 1);
        assert!(violation.field.ends_with('…'));
        assert_eq!(
            violation.description.chars().count(),
            MAX_DESCRIPTION_CHARS + 1
        );
        assert!(status.message().chars().count() < MAX_FIELD_CHARS + MAX_DESCRIPTION_CHARS + 20);
    }

    #[test]
    fn internal_hides_the_error_text() {
        let error = std::io::Error::other("password authentication failed for jane@example.com");
        let status = internal(&error);
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("jane"));
        assert!(status.message().contains("reference"));
    }
}
