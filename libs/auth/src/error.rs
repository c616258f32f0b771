//! Why a call was refused, and how it reaches the caller.

use tonic::Status;

/// A refused token or call. The caller sees a short reason, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("token header names its own key")]
    EmbeddedKey,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token is for another service")]
    WrongAudience,
    #[error("token from an unknown issuer")]
    WrongIssuer,
    #[error("token revoked")]
    Revoked,
    #[error("principal disabled")]
    Disabled,
    #[error("the token lacks scope {0}")]
    MissingScope(&'static str),
    #[error("method not open to any caller")]
    MethodNotListed,
    /// The verifier could not refresh keys and revocations for too long.
    #[error("cannot check tokens now: signing keys and revocations are out of date")]
    Stale,
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::MissingScope(_) | AuthError::MethodNotListed => {
                Status::permission_denied(error.to_string())
            }
            AuthError::Stale => Status::unavailable(error.to_string()),
            _ => Status::unauthenticated(error.to_string()),
        }
    }
}
