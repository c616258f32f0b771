//! `ecrm`: the command that runs the eCRM suite locally and operates it.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command line tool talks to its user on stdout and stderr"
)]

/// Writes one line on stdout for the user. A closed stdout (`ecrm up | head`) must not stop a
/// running suite, so write errors are ignored rather than panicking as `println!` would.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod commands;
mod failure;
mod output;
mod session;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::output::{Format, Output};

/// The eCRM suite: customer profiles, consent, data subject requests, segmentation and
/// outbound communication, as gRPC services.
///
/// Start the suite with `ecrm up`, log in with `ecrm login`, then operate it with the other
/// commands. Exit codes: 0 done, 1 failed, 2 bad usage or input, 3 not logged in (run
/// `ecrm login`), 4 permission denied, 5 not found, 6 conflicts with the current state,
/// 7 the suite cannot be reached or is busy (try again).
#[derive(Debug, Parser)]
#[command(name = "ecrm", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// How results are printed: `table` for people, `json` for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table, env = "ECRM_OUTPUT")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Up(up::UpArgs),
    #[command(flatten)]
    Operate(commands::Operate),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Operate(command) => commands::run(command, Output { format: cli.output }),
    }
}
