//! The segmentation service binary.

use std::process::ExitCode;

use clap::Parser;
use ecrm_platform::PlatformConfig;
use ecrm_platform::auth::AuthConfig;
use ecrm_segmentation::{SERVICE, SegmentationConfig};

/// The eCRM segmentation service: customer aggregates, scores, segments, tiers and KPIs.
#[derive(Debug, Parser)]
#[command(name = "ecrm-segmentation", version)]
struct Cli {
    #[command(flatten)]
    platform: PlatformConfig,
    #[command(flatten)]
    auth: AuthConfig,
    #[command(flatten)]
    segmentation: SegmentationConfig,
}

#[expect(
    clippy::print_stderr,
    reason = "reports a bad configuration before logging exists"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli
        .segmentation
        .validate()
        .and_then(|()| cli.auth.validate())
    {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let (segmentation, auth) = (cli.segmentation, cli.auth);
    ecrm_platform::serve(&SERVICE, cli.platform, move |context| {
        ecrm_segmentation::build(context, segmentation, auth)
    })
}
