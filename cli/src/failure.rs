//! What went wrong, said with what to do next, and the exit code scripts can rely on.

use std::path::PathBuf;

use ecrm_client::ClientError;
use tonic::Code;

/// Exit codes, documented in the README: scripts branch on them.
pub mod exit {
    pub const FAILURE: u8 = 1;
    /// Bad usage or input (clap's own errors use 2 too).
    pub const USAGE: u8 = 2;
    /// Not logged in, or the session ended.
    pub const LOGIN: u8 = 3;
    pub const PERMISSION: u8 = 4;
    pub const NOT_FOUND: u8 = 5;
    /// The request conflicts with the current state (already exists, wrong state).
    pub const CONFLICT: u8 = 6;
    /// The suite cannot be reached, or is busy: try again later.
    pub const UNAVAILABLE: u8 = 7;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("not logged in: run `ecrm login` first")]
    NotLoggedIn,
    #[error("your session has ended or expired: run `ecrm login` again")]
    SessionEnded,
    #[error("{doing}: {}", describe(.status))]
    Call {
        doing: String,
        status: tonic::Status,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
    #[error("cannot {doing} {path}")]
    File {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NotLoggedIn | CliError::SessionEnded => exit::LOGIN,
            CliError::Usage(_) => exit::USAGE,
            CliError::Client(_) => exit::USAGE,
            CliError::Failed(_) | CliError::File { .. } => exit::FAILURE,
            CliError::Call { status, .. } => match status.code() {
                Code::InvalidArgument | Code::OutOfRange => exit::USAGE,
                Code::Unauthenticated => exit::LOGIN,
                Code::PermissionDenied => exit::PERMISSION,
                Code::NotFound => exit::NOT_FOUND,
                Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => exit::CONFLICT,
                Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                    exit::UNAVAILABLE
                }
                _ if connection_failed(status) => exit::UNAVAILABLE,
                _ => exit::FAILURE,
            },
        }
    }
}

/// A status for people: the service's message, and what to do about it.
fn describe(status: &tonic::Status) -> String {
    let message = status.message();
    match status.code() {
        Code::Unauthenticated => {
            format!("not accepted ({message}): run `ecrm login` again")
        }
        Code::PermissionDenied => format!(
            "permission denied ({message}): your account lacks the scope; an admin can grant it"
        ),
        Code::Unavailable => format!(
            "the service cannot be reached ({message}): is the suite running (`ecrm up`), and are the URLs given at `ecrm login` right?"
        ),
        Code::DeadlineExceeded => format!("no answer in time ({message}): try again"),
        Code::ResourceExhausted => format!("too many requests ({message}): wait and try again"),
        Code::InvalidArgument => format!("invalid input: {message}"),
        Code::NotFound => format!("not found: {message}"),
        _ if connection_failed(status) => format!(
            "the connection failed ({message}: {}): check the URLs and the TLS files given at `ecrm login` (--tls-ca, and --tls-cert with --tls-key where the suite requires client certificates)",
            std::error::Error::source(status)
                .map(|source| ecrm_platform::status::chain(source).to_string())
                .unwrap_or_default()
        ),
        _ => message.to_owned(),
    }
}

/// Whether the call failed below gRPC, in the connection (e.g. a TLS handshake refused).
fn connection_failed(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| source.is::<tonic::transport::Error>())
}

/// The error of a failed call, naming what was being done.
pub fn failed_call(what: &str, status: tonic::Status) -> CliError {
    // A refused refresh token is the end of the session, whatever call found out.
    if status.code() == Code::Unauthenticated && status.message().contains("session") {
        return CliError::SessionEnded;
    }
    CliError::Call {
        doing: format!("cannot {what}"),
        status,
    }
}

/// The answer of an RPC, or an error naming what was being done:
/// `client.get_request(req).await.doing("read the request")?`.
pub trait Doing<T> {
    fn doing(self, what: &str) -> Result<T, CliError>;
}

impl<T> Doing<T> for Result<tonic::Response<T>, tonic::Status> {
    fn doing(self, what: &str) -> Result<T, CliError> {
        self.map(tonic::Response::into_inner)
            .map_err(|status| failed_call(what, status))
    }
}
