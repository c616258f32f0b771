//! A private cluster in a folder: initialisation, start, stop and the superuser's connection url.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use url::Url;

use crate::binaries::PgBinaries;
use crate::error::Error;
use crate::files::{self, Password, PidFile, RootLock};
use crate::process;
use crate::server_user::ServerUser;

/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// Lines of the server log quoted when the server does not start.
const LOG_TAIL_LINES: usize = 20;

/// Ports tried when the caller lets us pick one: another process may grab a free port between
/// our probe and the server binding it.
const FREE_PORT_ATTEMPTS: u32 = 3;

/// `pg_ctl status` exit code for "no server running".
const PG_CTL_STATUS_NOT_RUNNING: i32 = 3;

/// How a cluster is initialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Disables fsync/full_page_writes/synchronous_commit: for throwaway test clusters only.
    pub ephemeral: bool,
    /// Superuser name, default "postgres".
    pub superuser: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            ephemeral: false,
            superuser: "postgres".to_owned(),
        }
    }
}

/// A PostgreSQL cluster living in a folder of ours, listening on 127.0.0.1 only.
///
/// Layout of the root folder: `data/` (PGDATA, owned by the server user, mode 0700),
/// `log/server.log`, `superuser.password` (mode 0600, owned by the caller) and `.lock`.
/// Several processes may share a root: initialisation and start are serialised by a file lock.
#[derive(Debug)]
pub struct LocalCluster {
    binaries: PgBinaries,
    root: PathBuf,
    data: PathBuf,
    log_file: PathBuf,
    superuser: String,
    password: Password,
    user: ServerUser,
    port: Option<u16>,
}

impl LocalCluster {
    /// Opens the cluster in `root`, running `initdb` first when it has never been initialised (or an
    /// earlier initialisation was interrupted, in which case the half-made data folder is replaced).
    pub fn init_or_open(
        binaries: PgBinaries,
        root: &Path,
        options: ClusterOptions,
    ) -> Result<Self, Error> {
        let user = ServerUser::detect()?;
        std::fs::create_dir_all(root)
            .map_err(|source| Error::io("cannot create folder", root, source))?;
        let root = root
            .canonicalize()
            .map_err(|source| Error::io("cannot resolve", root, source))?;
        user.allow_traversal(&root)?;
        let _lock = RootLock::acquire(&root)?;

        let log_dir = root.join("log");
        if !log_dir.is_dir() {
            create_private_dir(&log_dir)?;
            user.take_ownership(&log_dir)?;
        }
        user.check_writable(&log_dir)?;

        let data = root.join("data");
        let password_file = root.join("superuser.password");
        let password = if files::is_initialised(&data)? {
            user.check_writable(&data)?;
            Password::read(&password_file)?.ok_or(Error::PasswordFileMissing {
                path: password_file,
            })?
        } else {
            initialise(&binaries, &user, &root, &options)?
        };
        Ok(Self {
            binaries,
            log_file: log_dir.join("server.log"),
            root,
            data,
            superuser: options.superuser,
            password,
            user,
            port: None,
        })
    }

    /// Starts the server on 127.0.0.1:`port` (0: a free port); a server already running on this
    /// cluster (left by an earlier process) is stopped first, then started again on `port`.
    pub fn start(&mut self, port: u16) -> Result<(), Error> {
        let _lock = RootLock::acquire(&self.root)?;
        self.start_locked(port)
    }

    /// Keeps a server already running on this cluster (adopting its port), else starts one on a
    /// free port; lets many test processes share one cluster.
    pub fn ensure_running(&mut self) -> Result<(), Error> {
        let _lock = RootLock::acquire(&self.root)?;
        if self.is_running()?
            && let Some(pid_file) = PidFile::read(&self.data)?
        {
            tracing::debug!(port = pid_file.port, "postgresql already running");
            self.port = Some(pid_file.port);
            return Ok(());
        }
        self.start_locked(0)
    }

    /// Stops the server (fast mode: open sessions are cut); Ok when it was not running.
    pub fn stop(&self) -> Result<(), Error> {
        let _lock = RootLock::acquire(&self.root)?;
        self.stop_locked()
    }

    /// Whether a server is running on this cluster, according to `pg_ctl status`.
    pub fn is_running(&self) -> Result<bool, Error> {
        let mut command = self.pg_ctl();
        command.arg("status");
        let label = "pg_ctl status";
        let output = process::run_unchecked(command, label)?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(PG_CTL_STATUS_NOT_RUNNING) => Ok(false),
            _ => Err(Error::CommandFailed {
                command: label.to_owned(),
                status: output.status.to_string(),
                detail: process::detail(&output),
            }),
        }
    }

    /// The port this handle started or adopted the server on; `None` before `start`/`ensure_running`.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// PID of the postmaster from `data/postmaster.pid`, when that process is alive.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid = PidFile::read(&self.data).ok().flatten()?.pid;
        let raw = i32::try_from(pid).ok()?;
        // EPERM still proves the process exists (it belongs to another user).
        match kill(Pid::from_raw(raw), None) {
            Ok(()) | Err(Errno::EPERM) => Some(pid),
            Err(_) => None,
        }
    }

    /// `postgres://<superuser>:<password>@127.0.0.1:<port>/<dbname>`, with the parts percent-encoded.
    pub fn superuser_url(&self, dbname: &str) -> Result<Url, Error> {
        let port = self.port.ok_or(Error::NotStarted)?;
        let invalid = |reason: &str| Error::InvalidUrl {
            reason: reason.to_owned(),
        };
        let mut url =
            Url::parse("postgres://127.0.0.1/").map_err(|error| invalid(&error.to_string()))?;
        url.set_port(Some(port))
            .map_err(|()| invalid("the url cannot have a port"))?;
        url.set_username(&self.superuser)
            .map_err(|()| invalid("the url cannot have a user name"))?;
        url.set_password(Some(self.password.expose()))
            .map_err(|()| invalid("the url cannot have a password"))?;
        url.path_segments_mut()
            .map_err(|()| invalid("the url cannot have a path"))?
            .clear()
            .push(dbname);
        Ok(url)
    }

    /// The data folder (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// `pg_ctl -D <data>` as the server user.
    fn pg_ctl(&self) -> std::process::Command {
        let mut command = self.user.command(&self.binaries.program("pg_ctl"));
        command.arg("-D").arg(&self.data);
        command
    }

    fn start_locked(&mut self, port: u16) -> Result<(), Error> {
        if self.is_running()? {
            tracing::info!("stopping the postgresql server left running before starting it again");
            self.stop_locked()?;
        }
        let attempts = if port == 0 { FREE_PORT_ATTEMPTS } else { 1 };
        let mut attempt = 1;
        loop {
            let chosen = if port == 0 {
                process::free_port()?
            } else {
                port
            };
            match self.pg_ctl_start(chosen) {
                Ok(()) => {
                    tracing::info!(port = chosen, "postgresql started");
                    self.port = Some(chosen);
                    return Ok(());
                }
                Err(error) if attempt < attempts => {
                    tracing::warn!(port = chosen, %error, "postgresql did not start, trying another port");
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn pg_ctl_start(&self, port: u16) -> Result<(), Error> {
        let mut command = self.pg_ctl();
        command
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-o"])
            .arg(format!("-p {port}"))
            .arg("start");
        let output = process::run_unchecked(command, "pg_ctl start")?;
        if output.status.success() {
            return Ok(());
        }
        // pg_ctl can fail after the server came up (its wait timed out, it was interrupted):
        // never leave that server behind.
        if self.is_running().unwrap_or(false)
            && let Err(error) = self.stop_locked()
        {
            tracing::error!(%error, "cannot stop the server of a failed start");
        }
        Err(Error::StartFailed {
            port,
            status: output.status.to_string(),
            detail: process::detail(&output),
            log: self.log_file.clone(),
            log_tail: files::log_tail(&self.log_file, LOG_TAIL_LINES),
        })
    }

    fn stop_locked(&self) -> Result<(), Error> {
        if !self.is_running()? {
            return Ok(());
        }
        let mut command = self.pg_ctl();
        command.args(["-m", "fast", "-w", "-t", PG_CTL_TIMEOUT_SECS, "stop"]);
        match process::run(command, "pg_ctl stop") {
            Ok(_) => {
                tracing::info!("postgresql stopped");
                Ok(())
            }
            // Stopped meanwhile by someone not holding our lock (e.g. a signal): that is the goal.
            Err(_) if !self.is_running()? => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Runs `initdb` in a fresh `root/data` and appends our settings; returns the superuser password.
fn initialise(
    binaries: &PgBinaries,
    user: &ServerUser,
    root: &Path,
    options: &ClusterOptions,
) -> Result<Password, Error> {
    let data = root.join("data");
    if data.exists() {
        tracing::warn!("removing a data folder left half-initialised");
        std::fs::remove_dir_all(&data)
            .map_err(|source| Error::io("cannot remove folder", &data, source))?;
    }
    create_private_dir(&data)?;
    user.take_ownership(&data)?;
    user.check_writable(&data)?;

    // The password file is written before initdb so that an initialised cluster always has one.
    let password = Password::generate()?;
    password.write(&root.join("superuser.password"))?;
    let password_input = password.temp_file_in(root)?;
    user.take_ownership(password_input.path())?;

    let mut pwfile_arg = OsString::from("--pwfile=");
    pwfile_arg.push(password_input.path());
    let mut command = user.command(&binaries.program("initdb"));
    command
        .arg("-D")
        .arg(&data)
        .args(["-U", &options.superuser])
        .args(["-E", "UTF8", "--locale=C"])
        .args(["--auth-local=peer", "--auth-host=scram-sha-256"])
        .arg(pwfile_arg);
    tracing::info!("initialising a postgresql cluster");
    process::run(command, "initdb")?;
    drop(password_input);

    files::append_settings(&data, options.ephemeral)?;
    Ok(password)
}

/// Creates `dir` with mode 0700: PostgreSQL refuses a data folder others can read.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::io("cannot create folder", dir, source))
}
