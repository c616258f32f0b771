//! The identity service binary.

use std::process::ExitCode;

use clap::Parser;
use ecrm_identity::{IdentityConfig, SERVICE};
use ecrm_platform::PlatformConfig;

/// The eCRM identity service: service accounts, operators, tokens and signing keys.
#[derive(Debug, Parser)]
#[command(name = "ecrm-identity", version)]
struct Cli {
    #[command(flatten)]
    platform: PlatformConfig,
    #[command(flatten)]
    identity: IdentityConfig,
}

#[expect(
    clippy::print_stderr,
    reason = "reports a bad configuration before logging exists"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.identity.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let identity = cli.identity;
    ecrm_platform::serve(&SERVICE, cli.platform, move |context| {
        ecrm_identity::build(context, identity)
    })
}
