//! `pgbench`, PostgreSQL's own load generator, as a baseline: its transactions a second and
//! each transaction's latency (from its per-transaction log).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ecrm_platform::DatabaseUrl;
use tokio::process::Command;

use crate::driver::{Limit, Load, Measured};

/// What pgbench runs.
#[derive(Debug, Clone, Copy)]
pub enum Workload<'a> {
    /// `-S`: one indexed SELECT on its own tables (made by [`init`]).
    SelectOnly,
    /// A script of SQL, with prepared statements.
    Script(&'a str),
}

/// Makes pgbench's tables (scale 10: a million accounts) in `url`'s database.
pub async fn init(url: &DatabaseUrl) -> anyhow::Result<()> {
    let output = command(url)
        .args(["-i", "-q", "-s", "10"])
        .output()
        .await
        .context("pgbench must be installed (Debian: postgresql-client)")?;
    if !output.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Runs `workload` with `load.clients` clients (as many threads as cores, at most one per
/// client) for `load`'s length.
pub async fn run(
    url: &DatabaseUrl,
    load: Load,
    workload: Workload<'_>,
) -> anyhow::Result<Measured> {
    let dir = tempfile::Builder::new().prefix("ecrm-pgbench-").tempdir()?;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let threads = load.clients.min(cores);
    let mut pgbench = command(url);
    pgbench
        .current_dir(dir.path())
        .args(["-n", "-l", "--log-prefix", "tx"])
        .args(["-c", &load.clients.to_string(), "-j", &threads.to_string()]);
    match load.limit {
        Limit::For(run) => pgbench.args(["-T", &run.as_secs().max(1).to_string()]),
        Limit::Count(count) => {
            let per_client = count.div_ceil(load.clients as u64).max(1);
            pgbench.args(["-t", &per_client.to_string()])
        }
    };
    match workload {
        Workload::SelectOnly => {
            pgbench.arg("-S");
        }
        Workload::Script(sql) => {
            let script = dir.path().join("script.sql");
            std::fs::write(&script, sql)?;
            pgbench.args(["-M", "prepared", "-f"]).arg(&script);
        }
    }
    let output = pgbench.output().await.context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps = stdout
        .lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))?;
    let mut measured = Measured::empty()?;
    read_logs(dir.path(), &mut measured)?;
    // The transactions over the rate pgbench reports (connections made before its clock).
    measured.elapsed = Duration::from_secs_f64(measured.ops as f64 / tps.max(f64::MIN_POSITIVE));
    Ok(measured)
}

/// Each transaction of pgbench's logs (`tx.<pid>[.<thread>]`): `client transaction latency_us
/// script epoch epoch_us`.
fn read_logs(dir: &Path, measured: &mut Measured) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tx."));
        if !is_log {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let latency: Option<u64> = line.split_whitespace().nth(2).and_then(|f| f.parse().ok());
            if let Some(micros) = latency {
                measured.ops += 1;
                measured.record(Duration::from_micros(micros))?;
            }
        }
    }
    Ok(())
}

/// pgbench on `url`'s database, connected through libpq's environment so that no password
/// shows on a command line.
fn command(url: &DatabaseUrl) -> Command {
    let mut command = Command::new("pgbench");
    command
        .env("PGHOST", url.host().unwrap_or("127.0.0.1"))
        .env("PGPORT", url.port().unwrap_or(5432).to_string())
        .env("PGUSER", url.username())
        .env("PGDATABASE", url.database())
        .kill_on_drop(true);
    if let Some(password) = url.password() {
        command.env("PGPASSWORD", password);
    }
    command
}
