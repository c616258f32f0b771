//! The commands that operate a running suite, each through the typed client and the session
//! `ecrm login` saved.

mod accounts;
mod campaigns;
mod common;
mod consent;
mod documents;
mod dsr;
mod keys;
mod login;
mod profiles;
mod segments;

use std::process::ExitCode;

use crate::failure::CliError;
use crate::output::Output;
use crate::session::Session;

#[derive(Debug, clap::Subcommand)]
pub enum Operate {
    Login(login::LoginArgs),
    Logout(login::LogoutArgs),
    #[command(subcommand)]
    Dsr(dsr::DsrCommand),
    #[command(subcommand)]
    Profiles(profiles::ProfilesCommand),
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    #[command(subcommand)]
    Segments(segments::SegmentsCommand),
    #[command(subcommand)]
    Campaigns(campaigns::CampaignsCommand),
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Runs `command` and turns its outcome into an exit code, saying what went wrong and what to
/// do about it on stderr.
pub fn run(command: Operate, output: Output) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match command {
            Operate::Login(args) => login::login(args, output).await,
            Operate::Logout(args) => login::logout(args, output).await,
            Operate::Dsr(command) => {
                with_session(async |session| dsr::run(command, session, output).await).await
            }
            Operate::Profiles(command) => {
                with_session(async |session| profiles::run(command, session, output).await).await
            }
            Operate::Consent(command) => {
                with_session(async |session| consent::run(command, session, output).await).await
            }
            Operate::Segments(command) => {
                with_session(async |session| segments::run(command, session, output).await).await
            }
            Operate::Campaigns(command) => {
                with_session(async |session| campaigns::run(command, session, output).await).await
            }
            Operate::Accounts(command) => {
                with_session(async |session| accounts::run(command, session, output).await).await
            }
            Operate::Keys(command) => {
                with_session(async |session| keys::run(command, session, output).await).await
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", chain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs `work` in the saved session, then keeps the tokens it obtained for the next command.
async fn with_session<F>(work: F) -> Result<(), CliError>
where
    F: AsyncFnOnce(&Session) -> Result<(), CliError>,
{
    let session = Session::open().await?;
    let outcome = work(&session).await;
    let saved = session.close().await;
    outcome.and(saved)
}

/// The error and its causes, on one line.
fn chain(error: &CliError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
