//! Running external commands and turning their failures into [`Error`]s.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Runs `command` to completion, capturing its output; a non-zero exit is an [`Error::CommandFailed`].
pub(crate) fn run(command: Command, label: &str) -> Result<Output, Error> {
    let output = run_unchecked(command, label)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(Error::CommandFailed {
            command: label.to_owned(),
            status: output.status.to_string(),
            detail: detail(&output),
        })
    }
}

/// Runs `command` to completion, capturing its output, whatever its exit status.
pub(crate) fn run_unchecked(mut command: Command, label: &str) -> Result<Output, Error> {
    tracing::debug!(command = label, "running");
    // Stdin from /dev/null: nothing here is interactive, and a server forked by `pg_ctl`
    // must not keep a pipe of ours open.
    command.stdin(Stdio::null());
    command
        .output()
        .map_err(|source| Error::io("cannot run", PathBuf::from(command.get_program()), source))
}

/// What a failed command said: its standard error, or its standard output when that is empty.
pub(crate) fn detail(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    } else {
        stderr.to_owned()
    }
}

/// A port on 127.0.0.1 that nothing listens on right now (the kernel's pick for port 0).
pub(crate) fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|source| Error::io("cannot bind", "127.0.0.1:0", source))?;
    let address = listener
        .local_addr()
        .map_err(|source| Error::io("cannot read the address of", "127.0.0.1:0", source))?;
    Ok(address.port())
}

/// Whether `pid` is a live process, from `/proc`; a zombie awaiting its reaper counts as gone.
pub fn process_is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Waits up to `timeout` for `pid` to exit; true when it did.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_is_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}
