//! The consent service binary.

use std::process::ExitCode;

use clap::Parser;
use ecrm_consent::{ConsentConfig, SERVICE};
use ecrm_platform::PlatformConfig;
use ecrm_platform::auth::AuthConfig;

/// The eCRM consent service: purposes, notices and the consent ledger.
#[derive(Debug, Parser)]
#[command(name = "ecrm-consent", version)]
struct Cli {
    #[command(flatten)]
    platform: PlatformConfig,
    #[command(flatten)]
    auth: AuthConfig,
    #[command(flatten)]
    consent: ConsentConfig,
}

#[expect(
    clippy::print_stderr,
    reason = "reports a bad configuration before logging exists"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.consent.validate().and_then(|()| cli.auth.validate()) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let (consent, auth) = (cli.consent, cli.auth);
    ecrm_platform::serve(&SERVICE, cli.platform, move |context| {
        ecrm_consent::build(context, consent, auth)
    })
}
