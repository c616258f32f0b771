//! The `ecrm-identity` command line: serving (the default), or writing the internal accounts'
//! credential files of a deployment (`provision-accounts`).

use std::path::PathBuf;

use clap::{Args, FromArgMatches as _};
use ecrm_crypto::MasterKeyArg;
use ecrm_platform::config::{ConfigError, DatabaseConfig, SecretParser, TelemetryConfig};
use ecrm_platform::{PlatformConfig, ServiceContext, StartError};
use tokio_util::sync::CancellationToken;

use crate::internal_accounts::AccountFile;
use crate::{Identity, IdentityConfig, IdentityError, SERVICE};

// The settings of the service itself (no doc comment: it would become the command's).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub platform: PlatformConfig,
    #[command(flatten)]
    pub identity: IdentityConfig,
}

// The settings of `provision-accounts`: identity's own database and master key.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// Folder the `<service>.env` files are written to, created (mode 0700) when missing.
    #[arg(long = "out-dir")]
    pub out_dir: PathBuf,
    /// The key identity's signing keys are sealed with: the one the service runs with.
    #[arg(long = "master-key", env = "ECRM_IDENTITY_MASTER_KEY", hide_env_values = true, value_parser = SecretParser::<MasterKeyArg>::new())]
    pub master_key: MasterKeyArg,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Invocation {
    Serve(Box<ServeArgs>),
    ProvisionAccounts(Box<ProvisionArgs>),
}

const PROVISION_ACCOUNTS: &str = "provision-accounts";

/// The whole command line, flags and environment variables, as the binary parses it.
pub fn command() -> clap::Command {
    let provision = ProvisionArgs::augment_args(clap::Command::new(PROVISION_ACCOUNTS))
        .about("Write the credential files of every other service's internal account")
        .long_about(
            "Create or update the internal account of every other service (migrations applied \
         first; no server needs to run) and write its credentials to <out-dir>/<service>.env, \
         mode 0600. A file whose credentials still work is kept. No secret is printed.",
        );
    ServeArgs::augment_args(clap::Command::new("ecrm-identity"))
        .version(env!("CARGO_PKG_VERSION"))
        .about("The eCRM identity service: service accounts, operators, tokens and signing keys.")
        // Without a subcommand the binary serves: serving's required settings must not be
        // asked of a subcommand. Serving's settings are not refused next to one either: the
        // environment that sets them (the image's ECRM_LISTEN) is the subcommand's too.
        .subcommand_negates_reqs(true)
        .subcommand(provision)
}

/// Parses the process's arguments and environment; exits with clap's message on an error.
pub fn parse() -> Invocation {
    match parse_from(std::env::args_os()) {
        Ok(invocation) => invocation,
        Err(error) => error.exit(),
    }
}

/// Parses `args` (the first is the binary's name) and the environment.
pub fn parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = command();
    let matches = command.try_get_matches_from_mut(args)?;
    let parsed = match matches.subcommand() {
        Some((PROVISION_ACCOUNTS, sub)) => ProvisionArgs::from_arg_matches(sub)
            .map(|args| Invocation::ProvisionAccounts(args.into())),
        _ => ServeArgs::from_arg_matches(&matches).map(|args| Invocation::Serve(args.into())),
    };
    parsed.map_err(|error| error.format(&mut command))
}

/// Why `provision-accounts` failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] StartError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl ProvisionArgs {
    /// Checks what clap's per-value parsing cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.telemetry.validate()
    }
}

/// Creates identity's role and schema when an admin URL is given, applies its migrations, makes
/// sure its signing keys exist, and writes the credential files of every internal account.
pub async fn provision_accounts(args: &ProvisionArgs) -> Result<Vec<AccountFile>, ProvisionError> {
    let db = ecrm_platform::prepare_database(&SERVICE, &args.database).await?;
    let shutdown = CancellationToken::new();
    // Its background work (the verifier's refreshes, the sweeper) stops with this function.
    let _stop = shutdown.clone().drop_guard();
    let identity = Identity::new(
        ServiceContext::new(db, shutdown),
        IdentityConfig::new(args.master_key.0.clone()),
    )
    .await?;
    Ok(identity.provision_account_files(&args.out_dir).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn no_subcommand_serves_and_needs_the_database_and_the_key() {
        let parsed = parse_from([
            "ecrm-identity",
            "--database-url",
            "postgres://ecrm_identity@db/ecrm",
            "--master-key",
            KEY,
        ])
        .unwrap();
        assert!(matches!(parsed, Invocation::Serve(_)));
        if std::env::var_os("DATABASE_URL").is_none() {
            assert!(parse_from(["ecrm-identity", "--master-key", KEY]).is_err());
        }
    }

    #[test]
    fn provision_accounts_takes_its_own_settings() {
        let parsed = parse_from([
            "ecrm-identity",
            "provision-accounts",
            "--out-dir",
            "/secrets",
            "--database-url",
            "postgres://ecrm_identity@db/ecrm",
            "--master-key",
            KEY,
        ])
        .unwrap();
        let Invocation::ProvisionAccounts(args) = parsed else {
            panic!("not provision-accounts");
        };
        assert_eq!(args.out_dir, PathBuf::from("/secrets"));
        if std::env::var_os("DATABASE_URL").is_none() {
            let without_database = ["ecrm-identity", "provision-accounts", "--out-dir", "/s"];
            assert!(parse_from(without_database).is_err());
        }
    }
}
