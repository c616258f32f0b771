//! `ecrm up` run as its user runs it: the real binary in a scratch folder of its own, its
//! endpoints read from what it prints, and gRPC channels and operator tokens to call it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

pub const SERVICES: [&str; 5] = [
    "identity",
    "profiles",
    "consent",
    "segmentation",
    "outbound",
];
/// The issue's promise: serving within a minute on a clean machine.
pub const READY_WITHIN: Duration = Duration::from_secs(60);

/// A folder in /tmp, which the `postgres` user can traverse when the tests run as root.
pub fn scratch() -> TempDir {
    tempfile::Builder::new()
        .prefix("ecrm-up-test-")
        .tempdir_in("/tmp")
        .unwrap()
}

/// `ecrm up` with a clean environment, its stderr kept in a file for failure reports.
pub fn ecrm_up(scratch: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecrm"));
    command
        .arg("up")
        .args(args)
        .current_dir(scratch)
        .env_remove("DATABASE_URL")
        .env_remove("ECRM_PG_BINDIR")
        .env_remove("ECRM_BASE_PORT")
        .env_remove("ECRM_DATA_DIR")
        .env_remove("ECRM_BOOTSTRAP_ADMIN_PASSWORD")
        .env_remove("ECRM_IDENTITY_MASTER_KEY")
        .env_remove("ECRM_PROFILES_MASTER_KEY")
        .env_remove("ECRM_CONSENT_MASTER_KEY")
        .env_remove("ECRM_OUTBOUND_MASTER_KEY")
        .env_remove("ECRM_OUTBOUND_SMTP_URL")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(scratch.join("stderr.log")).unwrap());
    command
}

/// A running `ecrm up`, killed (and its cluster stopped) if a test fails before stopping it.
pub struct Up {
    pub child: Child,
    pub scratch: PathBuf,
    pub endpoints: BTreeMap<String, SocketAddr>,
    pub lines: Vec<String>,
    /// Kept so the reader thread, and so the child's stdout, stay open until the end.
    stdout: mpsc::Receiver<String>,
    /// Whether the drop leaves the cluster running, as a crash of `ecrm up` would.
    keep_cluster: bool,
}

impl Up {
    pub fn start(scratch: &Path, args: &[&str]) -> Self {
        Self::spawn(ecrm_up(scratch, args), scratch)
    }

    pub fn spawn(mut command: Command, scratch: &Path) -> Self {
        let mut child = command.spawn().unwrap();
        let child_stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(child_stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        let mut up = Self {
            child,
            scratch: scratch.to_owned(),
            endpoints: BTreeMap::new(),
            lines: Vec::new(),
            stdout: rx,
            keep_cluster: false,
        };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match up.stdout.recv_timeout(left) {
                Ok(line) if line.starts_with("ready:") => break,
                Ok(line) => up.lines.push(line),
                Err(_) => panic!("ecrm up not ready in time:\n{}", up.report()),
            }
        }
        for line in &up.lines {
            let mut words = line.split_whitespace();
            if let (Some(name), Some(addr)) = (words.next(), words.next())
                && SERVICES.contains(&name)
            {
                up.endpoints.insert(name.to_owned(), addr.parse().unwrap());
            }
        }
        up
    }

    pub fn report(&self) -> String {
        let stderr = std::fs::read_to_string(self.scratch.join("stderr.log")).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{stderr}", self.lines.join("\n"))
    }

    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid_file = self.scratch.join(".ecrm/pg/data/postmaster.pid");
        let text = std::fs::read_to_string(pid_file).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Sends `signal` and waits for the exit.
    pub fn stop(mut self, signal: Signal) -> ExitStatus {
        kill(Pid::from_raw(self.child.id().try_into().unwrap()), signal).unwrap();
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("ecrm up did not stop:\n{}", self.report()));
        assert!(
            status.success(),
            "ecrm up failed: {status}\n{}",
            self.report()
        );
        status
    }

    /// Kills the process at once (SIGKILL: no shutdown of any kind) and waits until it is
    /// gone; its PostgreSQL is left running, as after a crash.
    pub fn crash(mut self) {
        kill(
            Pid::from_raw(self.child.id().try_into().unwrap()),
            Signal::SIGKILL,
        )
        .unwrap();
        wait_with_timeout(&mut self.child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("ecrm up survived SIGKILL:\n{}", self.report()));
        self.keep_cluster = true;
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !self.keep_cluster {
            stop_left_cluster(&self.scratch);
        }
    }
}

/// Stops a private cluster a failed test may have left running.
pub fn stop_left_cluster(scratch: &Path) {
    let root = scratch.join(".ecrm/pg");
    if root.join("data/postmaster.pid").exists()
        && let Ok(binaries) = ecrm_localpg::PgBinaries::find()
        && let Ok(cluster) =
            ecrm_localpg::LocalCluster::init_or_open(binaries, &root, Default::default())
    {
        let _ = cluster.stop();
    }
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub async fn channel_to(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A token of the operator `username` for `audience`, issued by the identity endpoint.
pub async fn operator_token(
    identity: SocketAddr,
    username: &str,
    password: &str,
    scopes: &[&str],
    audience: &str,
) -> Result<String, tonic::Status> {
    use ecrm_proto::ecrm::identity::v1 as pb;
    let token = pb::tokens_client::TokensClient::new(channel_to(identity).await)
        .issue_token(pb::IssueTokenRequest {
            grant: Some(pb::issue_token_request::Grant::OperatorPassword(
                pb::OperatorPassword {
                    username: username.to_owned(),
                    password: password.to_owned(),
                },
            )),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            audience: audience.to_owned(),
            start_session: false,
        })
        .await?
        .into_inner();
    Ok(token.access_token)
}

pub fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn printed_password(up: &Up) -> Option<String> {
    up.lines
        .iter()
        .find_map(|line| {
            line.strip_prefix("first operator created, shown once: username admin, password ")
        })
        .map(str::to_owned)
}
