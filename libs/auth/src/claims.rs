//! The claims of the suite's tokens.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::principal::PrincipalKind;

/// How long a token lives unless the issuer says otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The longest lifetime an issuer may give a token: revocations and retired keys are kept at
/// least this long (plus [`MAX_LEEWAY`]), whatever lifetime is configured now.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The most clock skew a verifier tolerates on `exp` and `nbf`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// A token's payload. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The principal's opaque id.
    pub sub: String,
    /// The one service the token is for.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// Space-separated scopes.
    pub scope: String,
    pub kind: PrincipalKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
}
