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

mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The eCRM suite: customer profiles, consent, data subject requests, segmentation and
/// outbound communication, as gRPC services.
#[derive(Debug, Parser)]
#[command(name = "ecrm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Up(up::UpArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => up::run(args),
    }
}
