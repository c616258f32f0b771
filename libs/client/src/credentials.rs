//! Who the client calls as: a service account, an operator, or a session started by either.

use std::fmt;

/// How the client proves who it is to identity. `Debug` never shows a secret.
#[derive(Clone)]
pub enum Credentials {
    /// A service account (an internal service or a partner), OAuth 2.0 client credentials.
    ServiceAccount {
        client_id: String,
        client_secret: String,
    },
    /// An operator (a person), by username and password. Every fresh token is a password
    /// check at identity: long-running tools should log in once and use a session.
    Operator { username: String, password: String },
    /// A session's refresh token (see [`crate::Tokens::start_session`]): tokens without the
    /// password or secret, until the session ends or expires.
    Session { refresh_token: String },
}

impl Credentials {
    pub fn service_account(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self::ServiceAccount {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    pub fn operator(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Operator {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn session(refresh_token: impl Into<String>) -> Self {
        Self::Session {
            refresh_token: refresh_token.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceAccount { client_id, .. } => f
                .debug_struct("ServiceAccount")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Self::Operator { username, .. } => f
                .debug_struct("Operator")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::Session { .. } => f.debug_struct("Session").finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = format!(
            "{:?} {:?} {:?}",
            Credentials::service_account("orders", "s3cret-value"),
            Credentials::operator("ada", "pa55word"),
            Credentials::session("ecrm_rt_abcdef")
        );
        assert!(shown.contains("orders") && shown.contains("ada"));
        for secret in ["s3cret-value", "pa55word", "ecrm_rt_abcdef"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
