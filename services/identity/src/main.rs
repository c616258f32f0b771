//! The identity service binary.

use std::process::ExitCode;

use ecrm_identity::SERVICE;
use ecrm_identity::cli::{Invocation, ProvisionArgs, ServeArgs};

/// Each password or secret check takes a 19 MiB Argon2 block on a blocking thread. The system
/// allocator keeps such blocks in per-thread arenas after they are freed (its mmap threshold
/// rises to their size), so identity grew to ~270 MiB resident under logins and kept it idle;
/// mimalloc gives blocks that large back to the system when freed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match ecrm_identity::cli::parse() {
        Invocation::Serve(args) => serve(*args),
        Invocation::ProvisionAccounts(args) => provision_accounts(&args),
    }
}

#[expect(
    clippy::print_stderr,
    reason = "reports a bad configuration before logging exists"
)]
fn serve(args: ServeArgs) -> ExitCode {
    if let Err(error) = args.identity.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let identity = args.identity;
    ecrm_platform::serve(&SERVICE, args.platform, move |context| {
        ecrm_identity::build(context, identity)
    })
}

#[expect(
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "a command: what it did goes to stdout (paths only, never a secret), failures to stderr"
)]
fn provision_accounts(args: &ProvisionArgs) -> ExitCode {
    if let Err(error) = args.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match runtime
        .block_on(async { ecrm_platform::Telemetry::init(&args.telemetry, "ecrm-identity") })
    {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(ecrm_identity::cli::provision_accounts(args)) {
        Ok(files) => {
            for file in files {
                let done = match file.outcome {
                    ecrm_identity::FileOutcome::Kept => "kept",
                    ecrm_identity::FileOutcome::Written => "written",
                };
                println!("{}: {done} {}", file.service, file.path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", ecrm_platform::status::chain(&error));
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
