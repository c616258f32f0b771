//! The operating-system user the server runs as: the current one, or `postgres` when we are root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::{Gid, Uid, User};

use crate::error::Error;
use crate::process;

/// The account PostgreSQL runs as when we are root (the one distribution packages create).
const SERVER_USER: &str = "postgres";

/// Who runs `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone)]
pub(crate) enum ServerUser {
    /// Not root: the server runs as the current user, which owns every folder already.
    Current,
    /// Root: PostgreSQL refuses to run as root, so the server runs as this user through `runuser`.
    Switched { name: String, uid: Uid, gid: Gid },
}

impl ServerUser {
    /// Picks the server user for the current effective user.
    pub(crate) fn detect() -> Result<Self, Error> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(Self::Current);
        }
        let no_user = || Error::NoServerUser {
            user: SERVER_USER.to_owned(),
        };
        let user = User::from_name(SERVER_USER)
            .map_err(|errno| Error::io("cannot look up user", SERVER_USER, errno.into()))?
            .ok_or_else(no_user)?;
        Ok(Self::Switched {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
        })
    }

    /// A command running `program` as the server user.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut command = match self {
            Self::Current => Command::new(program),
            Self::Switched { name, .. } => {
                let mut command = Command::new("runuser");
                command.args(["-u", name, "--"]).arg(program);
                command
            }
        };
        // Every path passed is absolute; a neutral working folder keeps the server user from
        // failing on a caller's folder it cannot enter (e.g. under /root).
        command.current_dir("/");
        command
    }

    /// Gives `path` to the server user, so the server can write in it.
    pub(crate) fn take_ownership(&self, path: &Path) -> Result<(), Error> {
        match self {
            Self::Current => Ok(()),
            Self::Switched { uid, gid, .. } => nix::unistd::chown(path, Some(*uid), Some(*gid))
                .map_err(|errno| Error::io("cannot change the owner of", path, errno.into())),
        }
    }

    /// Lets the server user traverse `dir` (owned by the caller) to reach the folders it owns inside.
    pub(crate) fn allow_traversal(&self, dir: &Path) -> Result<(), Error> {
        if matches!(self, Self::Current) {
            return Ok(());
        }
        let metadata =
            std::fs::metadata(dir).map_err(|source| Error::io("cannot inspect", dir, source))?;
        let mut permissions = metadata.permissions();
        let mode = permissions.mode();
        // Search permission only: others may pass through, not list; secrets inside are 0600.
        if mode & 0o001 == 0 {
            permissions.set_mode(mode | 0o001);
            std::fs::set_permissions(dir, permissions)
                .map_err(|source| Error::io("cannot change the permissions of", dir, source))?;
        }
        Ok(())
    }

    /// Fails with [`Error::FolderNotReachable`] when the server user cannot write in `dir`
    /// (typically because a parent folder such as /root is closed to it).
    pub(crate) fn check_writable(&self, dir: &Path) -> Result<(), Error> {
        let Self::Switched { name, .. } = self else {
            return Ok(());
        };
        let mut command = self.command(Path::new("test"));
        command.arg("-w").arg(dir);
        let label = "runuser test -w";
        let output = process::run_unchecked(command, label)?;
        // `test` answers 1 for "not writable"; other codes come from `runuser` itself failing.
        match output.status.code() {
            Some(0) => Ok(()),
            Some(1) => Err(Error::FolderNotReachable {
                path: dir.to_owned(),
                user: name.clone(),
            }),
            _ => Err(Error::CommandFailed {
                command: label.to_owned(),
                status: output.status.to_string(),
                detail: process::detail(&output),
            }),
        }
    }
}
