//! Locating the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) on this machine.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;
use crate::process;

/// Environment variable naming the folder of the server binaries; when set it is the only place looked at.
const BINDIR_VAR: &str = "ECRM_PG_BINDIR";

/// The programs a cluster needs; `pg_ctl` starts `postgres` from its own folder, so all live together.
const REQUIRED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Folder where Debian and Ubuntu install one `<major>/bin` per server version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Default prefix of a PostgreSQL built from source.
const SOURCE_BUILD_BINDIR: &str = "/usr/local/pgsql/bin";

/// A folder holding the PostgreSQL server binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    bindir: PathBuf,
}

impl PgBinaries {
    /// Finds `initdb`, `pg_ctl` and `postgres`, in order: the folder named by `ECRM_PG_BINDIR`
    /// (strictly: when set, nothing else is tried); a folder on `PATH` holding them; the
    /// highest-numbered `/usr/lib/postgresql/<N>/bin` (Debian/Ubuntu); `/usr/local/pgsql/bin`;
    /// the folder printed by `pg_config --bindir`.
    pub fn find() -> Result<Self, Error> {
        if let Some(dir) = std::env::var_os(BINDIR_VAR).filter(|dir| !dir.is_empty()) {
            return Self::in_dir(dir);
        }
        let found = path_candidates()
            .into_iter()
            .chain(debian_candidates())
            .chain(std::iter::once(PathBuf::from(SOURCE_BUILD_BINDIR)))
            .chain(pg_config_bindir())
            .find_map(|dir| Self::in_dir(dir).ok());
        found.ok_or_else(|| Error::BinariesNotFound {
            searched: format!(
                "PATH, {DEBIAN_ROOT}/<version>/bin, {SOURCE_BUILD_BINDIR} or pg_config --bindir"
            ),
        })
    }

    /// Uses the binaries in `dir`, which must hold executable `initdb`, `pg_ctl` and `postgres`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let bindir = dir.into();
        if REQUIRED
            .iter()
            .all(|program| is_executable(&bindir.join(program)))
        {
            Ok(Self { bindir })
        } else {
            Err(Error::BinariesNotFound {
                searched: bindir.display().to_string(),
            })
        }
    }

    /// The folder holding the binaries.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// What `postgres --version` prints, e.g. `postgres (PostgreSQL) 16.4`.
    pub fn version(&self) -> Result<String, Error> {
        // `--version` is answered before the server's refusal to run as root, so no `runuser` here.
        let mut command = Command::new(self.program("postgres"));
        command.arg("--version");
        let output = process::run(command, "postgres --version")?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Full path of one of the binaries.
    pub(crate) fn program(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// Folders on `PATH` holding both `initdb` and `pg_ctl` (Homebrew, Fedora, Arch put them there).
fn path_candidates() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl")))
        .collect()
}

/// `/usr/lib/postgresql/<N>/bin` folders, highest version first.
fn debian_candidates() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(DEBIAN_ROOT) else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// The folder `pg_config --bindir` prints, when `pg_config` is on `PATH` and succeeds.
fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}
