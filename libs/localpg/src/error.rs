//! Errors raised while finding, initialising, starting or stopping a local cluster.

use std::path::PathBuf;

/// Everything that can go wrong with a local cluster; messages are meant for the person running it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No folder holds `initdb`, `pg_ctl` and `postgres`.
    #[error(
        "postgresql server binaries (initdb, pg_ctl, postgres) not found in {searched}: install them \
         (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; \
         macOS: brew install postgresql@16), set ECRM_PG_BINDIR to their folder, or pass a database url"
    )]
    BinariesNotFound {
        /// Where the binaries were looked for.
        searched: String,
    },

    /// Running as root, but there is no `postgres` user to run the server as.
    #[error(
        "postgresql refuses to run as root and there is no `{user}` user to run it as: \
         create one (useradd --system {user}) or run as a normal user"
    )]
    NoServerUser {
        /// The missing user's name.
        user: String,
    },

    /// The user that runs the server cannot reach or write a folder of the cluster.
    #[error(
        "folder {} is not writable by the `{user}` user that runs postgresql (a parent folder such as \
         /root may be closed to it): put the cluster under a folder that user can traverse, such as /tmp \
         or /var/lib, or run as a normal user",
        path.display()
    )]
    FolderNotReachable {
        /// The folder the server user cannot use.
        path: PathBuf,
        /// The user that runs the server.
        user: String,
    },

    /// An external command ran but failed.
    #[error("{command} failed ({status}): {detail}")]
    CommandFailed {
        /// Which command, e.g. `pg_ctl start`.
        command: String,
        /// Its exit status.
        status: String,
        /// Its trimmed standard error (standard output when standard error is empty).
        detail: String,
    },

    /// The server did not start; the log tail usually says why (port in use, shared memory, ...).
    #[error(
        "postgresql did not start on port {port} ({status}): {detail}\nlast lines of {}:\n{log_tail}",
        log.display()
    )]
    StartFailed {
        /// The port the server was asked to listen on.
        port: u16,
        /// The exit status of `pg_ctl start`.
        status: String,
        /// What `pg_ctl start` printed.
        detail: String,
        /// The server log file.
        log: PathBuf,
        /// Its last lines.
        log_tail: String,
    },

    /// The data folder is initialised but the superuser password file is gone.
    #[error(
        "the cluster is initialised but its password file {} is missing: remove the cluster folder to start over",
        path.display()
    )]
    PasswordFileMissing {
        /// The expected password file.
        path: PathBuf,
    },

    /// `postmaster.pid` exists but does not have the expected layout.
    #[error("cannot read the server port from {}", path.display())]
    InvalidPidFile {
        /// The pid file.
        path: PathBuf,
    },

    /// A connection url was asked for before the server was started.
    #[error("the cluster is not running: start it before asking for its url")]
    NotStarted,

    /// The connection url could not be built.
    #[error("cannot build a connection url: {reason}")]
    InvalidUrl {
        /// What was wrong.
        reason: String,
    },

    /// A file or process operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `cannot create folder`.
        action: &'static str,
        /// The file, folder or program concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
