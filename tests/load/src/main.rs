//! `ecrm-load`: drives the eCRM suite, each service in its own process, with concurrent typed
//! clients, and runs each scenario's raw PostgreSQL baseline in the same run; prints
//! throughput, latency percentiles and ratios as a table or JSON, each service's memory, and
//! can rewrite the table of `tests/load/README.md`.

mod driver;
mod echo;
mod pgbench;
mod report;
mod rss;
mod scenarios;
mod suite;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ecrm_platform::config::TelemetryConfig;

use crate::driver::{Limit, Load};
use crate::echo::EchoMode;
use crate::report::{Machine, Memory, Report};
use crate::scenarios::{Context, Scenario};
use crate::suite::{ProcessSuite, SuiteSettings};

#[derive(Debug, Parser)]
#[command(
    name = "ecrm-load",
    version,
    about = "Measure the eCRM suite against raw PostgreSQL on this machine",
    after_help = "Example:\n  cargo build --release --bins\n  target/release/ecrm-load run --duration 10s --readme tests/load/README.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the suite in a throwaway database, run the scenarios and their baselines, report.
    Run(RunArgs),
    /// Serve the no-database RPC baseline (started by `run`).
    #[command(hide = true)]
    Echo {
        #[arg(long, value_enum)]
        mode: EchoMode,
        #[command(flatten)]
        telemetry: TelemetryConfig,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scenarios to run (repeat the flag or separate with commas); all by default.
    #[arg(long = "scenario", value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Concurrent clients of each scenario and of its baseline.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// How long each side of each scenario runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Operations per side instead of a duration.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Write the report as JSON to this file (`-` for standard output, instead of the table).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Rewrite the section between the `ecrm-load` markers of this Markdown file.
    #[arg(long)]
    readme: Option<PathBuf>,
    /// Where the service binaries are; by default, beside this one.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Customers the campaign scenario mails.
    #[arg(long, default_value_t = 20_000)]
    recipients: usize,
    /// Each service's connection pool.
    #[arg(long, default_value_t = 10)]
    pool_size: u32,
    /// The services' log filter (`RUST_LOG`); their logs go to files of the run's folder.
    #[arg(long, default_value = "warn")]
    log_filter: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error.into()),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Echo { mode, telemetry } => echo::serve(mode, &telemetry).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

#[expect(clippy::print_stderr, reason = "the failure of a command-line tool")]
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("ecrm-load: {error:#}");
    ExitCode::FAILURE
}

#[expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the report is the output"
)]
async fn run(args: RunArgs) -> anyhow::Result<()> {
    let limit = match args.count {
        Some(count) => Limit::Count(count),
        None => Limit::For(args.duration),
    };
    let load = Load::new(args.clients, limit);
    let bin_dir = match args.bin_dir.clone() {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .context("no folder for this program")?
            .to_path_buf(),
    };
    let mut scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    scenarios.sort();
    scenarios.dedup();

    eprintln!("starting the suite from {}", bin_dir.display());
    let suite = ProcessSuite::start(&SuiteSettings {
        bin_dir,
        pool_size: args.pool_size,
        log_filter: args.log_filter.clone(),
    })
    .await?;
    // Idle: started, ready, nothing asked yet but the health checks.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut memory = Vec::new();
    for (member, rss) in suite.rss()? {
        memory.push((member, rss, rss.current_kib()?));
        rss.reset_peak()?;
    }

    let mut context = Context::new(suite, load, args.log_filter.clone(), args.recipients).await?;
    let mut comparisons = Vec::new();
    for scenario in &scenarios {
        eprintln!("running {scenario:?}");
        let measured = scenario
            .run(&context)
            .await
            .with_context(|| format!("scenario {scenario:?}"));
        context.suite.check_alive()?;
        comparisons.extend(measured?);
    }
    let memory: Vec<Memory> = memory
        .into_iter()
        .map(|(member, rss, idle_kib)| {
            Ok(Memory {
                service: member.name().to_owned(),
                idle_kib,
                peak_kib: rss.peak_kib()?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let postgres = postgres_version(&context).await.unwrap_or_default();
    context.suite.stop().await?;

    let report = Report {
        command: command_line(),
        clients: load.clients,
        machine: machine(postgres),
        comparisons,
        memory,
    };
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Some(path) => {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            println!("{}", report.table());
        }
        None => println!("{}", report.table()),
    }
    if let Some(readme) = &args.readme {
        let text = std::fs::read_to_string(readme)
            .with_context(|| format!("cannot read {}", readme.display()))?;
        std::fs::write(readme, report::replace_section(&text, &report.markdown())?)?;
        eprintln!("updated {}", readme.display());
    }
    Ok(())
}

/// How this run was asked for, without the folder the binary is in.
fn command_line() -> String {
    let mut words = vec!["ecrm-load".to_owned()];
    words.extend(std::env::args().skip(1));
    words.join(" ")
}

fn machine(postgres: String) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model,
        memory_gib: memory_kib / 1024.0 / 1024.0,
        postgres,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    }
}

async fn postgres_version(context: &Context) -> anyhow::Result<String> {
    use diesel::{Connection as _, RunQueryDsl as _};
    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        server_version: String,
    }
    let url = context.database()?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut conn = diesel::PgConnection::establish(url.expose())?;
        Ok(diesel::sql_query("SHOW server_version")
            .get_result::<Version>(&mut conn)?
            .server_version)
    })
    .await?
}
