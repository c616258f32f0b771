//! The files kept around the server: the lock, the superuser password, settings, pid file and log.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::Error;

/// First line of the block this crate appends to `postgresql.conf`; its presence marks an
/// initialisation that ran to the end.
const SETTINGS_MARKER: &str = "# ecrm-localpg settings";

/// Bytes of randomness in a superuser password.
const PASSWORD_BYTES: usize = 32;

/// Holds an exclusive lock on `root/.lock` until dropped, serialising processes that share a root.
#[derive(Debug)]
pub(crate) struct RootLock {
    _file: File,
}

impl RootLock {
    /// Blocks until this process holds the lock of `root`.
    pub(crate) fn acquire(root: &Path) -> Result<Self, Error> {
        let path = root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::io("cannot open", &path, source))?;
        // `flock`-based, so two handles in one process exclude each other too; released on close.
        file.lock()
            .map_err(|source| Error::io("cannot lock", &path, source))?;
        Ok(Self { _file: file })
    }
}

/// A superuser password; `Debug` masks it so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Password(String);

impl Password {
    /// A fresh password: hex of 32 bytes from the system's secure random generator.
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut bytes = [0_u8; PASSWORD_BYTES];
        SystemRandom::new().fill(&mut bytes).map_err(|_| {
            Error::io(
                "cannot generate a password with",
                "the system random generator",
                std::io::Error::other("random generator failed"),
            )
        })?;
        Ok(Self(
            bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
        ))
    }

    /// Reads the password stored at `path`, `None` when the file does not exist.
    pub(crate) fn read(path: &Path) -> Result<Option<Self>, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Self(text.trim().to_owned()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::io("cannot read", path, source)),
        }
    }

    /// Stores the password at `path` (mode 0600), replacing the file atomically so a crash never
    /// leaves a truncated password behind.
    pub(crate) fn write(&self, path: &Path) -> Result<(), Error> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let file = self.temp_file_in(dir)?;
        file.persist(path)
            .map_err(|error| Error::io("cannot write", path, error.error))?;
        Ok(())
    }

    /// A temporary file in `dir` holding the password (mode 0600, removed when dropped), for `initdb --pwfile`.
    pub(crate) fn temp_file_in(&self, dir: &Path) -> Result<tempfile::NamedTempFile, Error> {
        let mut file = tempfile::Builder::new()
            .prefix(".password-")
            .tempfile_in(dir)
            .map_err(|source| Error::io("cannot create a file in", dir, source))?;
        writeln!(file, "{}", self.0)
            .and_then(|()| file.as_file().sync_all())
            .map_err(|source| Error::io("cannot write", file.path(), source))?;
        Ok(file)
    }

    /// The password itself; call only to build a connection url.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Whether `data` holds a cluster whose initialisation (initdb and our settings) completed.
pub(crate) fn is_initialised(data: &Path) -> Result<bool, Error> {
    if !data.join("PG_VERSION").is_file() {
        return Ok(false);
    }
    let conf = data.join("postgresql.conf");
    match std::fs::read_to_string(&conf) {
        Ok(text) => Ok(text.lines().any(|line| line == SETTINGS_MARKER)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::io("cannot read", conf, source)),
    }
}

/// Appends our settings to `data/postgresql.conf`; later lines win over initdb's defaults.
pub(crate) fn append_settings(data: &Path, ephemeral: bool) -> Result<(), Error> {
    let mut settings = format!(
        "\n{SETTINGS_MARKER}\n\
         listen_addresses = '127.0.0.1'\n\
         # no unix socket, so nothing depends on socket folder permissions or path lengths\n\
         unix_socket_directories = ''\n\
         # tests open many connections at once\n\
         max_connections = 200\n"
    );
    if ephemeral {
        settings.push_str(
            "# throwaway cluster: durability traded for speed\n\
             fsync = off\n\
             full_page_writes = off\n\
             synchronous_commit = off\n",
        );
    }
    let conf = data.join("postgresql.conf");
    let mut file = OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(|source| Error::io("cannot open", &conf, source))?;
    file.write_all(settings.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| Error::io("cannot write", &conf, source))
}

/// What a running server records in `data/postmaster.pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PidFile {
    pub(crate) pid: u32,
    pub(crate) port: u16,
}

impl PidFile {
    /// Reads `data/postmaster.pid`; `None` when there is none (the server is stopped).
    pub(crate) fn read(data: &Path) -> Result<Option<Self>, Error> {
        let path = data.join("postmaster.pid");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::io("cannot read", path, source)),
        };
        // Layout: pid, data folder, start time, port, socket folder, listen address, ...
        let mut lines = text.lines().map(str::trim);
        let pid = lines.next().and_then(|line| line.parse().ok());
        let port = lines.nth(2).and_then(|line| line.parse().ok());
        match (pid, port) {
            (Some(pid), Some(port)) => Ok(Some(Self { pid, port })),
            _ => Err(Error::InvalidPidFile { path }),
        }
    }
}

/// The last `count` lines of the log at `path`, or a note saying why there are none.
pub(crate) fn log_tail(path: &Path, count: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(count)..].join("\n")
        }
        Err(error) => format!("(log unavailable: {error})"),
    }
}
