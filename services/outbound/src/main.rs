//! The outbound service binary.

use std::process::ExitCode;

use clap::Parser;
use ecrm_outbound::{OutboundConfig, SERVICE};
use ecrm_platform::PlatformConfig;
use ecrm_platform::auth::AuthConfig;

/// The eCRM outbound communication service: templates, consent-gated messages and campaigns.
#[derive(Debug, Parser)]
#[command(name = "ecrm-outbound", version)]
struct Cli {
    #[command(flatten)]
    platform: PlatformConfig,
    #[command(flatten)]
    auth: AuthConfig,
    #[command(flatten)]
    outbound: OutboundConfig,
}

#[expect(
    clippy::print_stderr,
    reason = "reports a bad configuration before logging exists"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.auth.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let (auth, outbound) = (cli.auth, cli.outbound);
    ecrm_platform::serve(&SERVICE, cli.platform, move |context| {
        ecrm_outbound::build(context, outbound, auth)
    })
}
