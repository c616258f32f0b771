//! Helpers for the cluster tests: throwaway roots whose server is always stopped, psql and process checks.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers, not #[test] functions themselves: any failure must fail the test"
)]

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use ecrm_localpg::{ClusterOptions, LocalCluster, PgBinaries};
use tempfile::TempDir;
use url::Url;

/// A cluster root in /tmp (which the `postgres` user can traverse when tests run as root), created
/// with mode 0700 like a private folder would be, so opening it to the server user is exercised.
/// Dropping it stops any server left running in it, even when the test failed halfway.
pub struct TestRoot {
    dir: TempDir,
}

impl TestRoot {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ecrm-localpg-")
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in("/tmp")
            .unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Initialises or opens the throwaway cluster of this root.
    pub fn open(&self) -> LocalCluster {
        LocalCluster::init_or_open(binaries(), self.path(), ephemeral()).unwrap()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if self.path().join("data").join("postmaster.pid").exists()
            && let Ok(cluster) = LocalCluster::init_or_open(binaries(), self.path(), ephemeral())
        {
            // Nothing more can be done from a destructor, possibly running during a panic.
            let _ = cluster.stop();
        }
    }
}

pub fn binaries() -> PgBinaries {
    PgBinaries::find().unwrap()
}

pub fn ephemeral() -> ClusterOptions {
    ClusterOptions {
        ephemeral: true,
        ..ClusterOptions::default()
    }
}

/// Runs one statement through psql over TCP, never prompting and ignoring the caller's psql files.
pub fn psql(url: &Url, sql: &str) -> Output {
    Command::new("psql")
        .arg(url.as_str())
        .args(["--no-password", "--no-psqlrc", "-At", "-c", sql])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// What psql printed, when it succeeded; panics with its error otherwise.
pub fn psql_value(url: &Url, sql: &str) -> String {
    let output = psql(url, sql);
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
