//! The profiles service binary.

use std::process::ExitCode;

use clap::Parser;
use ecrm_platform::PlatformConfig;
use ecrm_platform::auth::AuthConfig;
use ecrm_profiles::{ProfilesConfig, SERVICE};

/// The eCRM profiles service: customers, identifiers, attributes, interactions and the change
/// feed.
#[derive(Debug, Parser)]
#[command(name = "ecrm-profiles", version)]
struct Cli {
    #[command(flatten)]
    platform: PlatformConfig,
    #[command(flatten)]
    auth: AuthConfig,
    #[command(flatten)]
    profiles: ProfilesConfig,
}

#[expect(
    clippy::print_stderr,
    reason = "reports a bad configuration before logging exists"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.profiles.validate().and_then(|()| cli.auth.validate()) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let (profiles, auth) = (cli.profiles, cli.auth);
    ecrm_platform::serve(&SERVICE, cli.platform, move |context| {
        ecrm_profiles::build(context, profiles, auth)
    })
}
