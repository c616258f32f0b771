//! `ecrm login` and `ecrm logout`.

use std::io::BufRead as _;

use ecrm_client::{Client, Credentials, Endpoints, Service};
use serde_json::json;

use crate::failure::{CliError, failed_call};
use crate::output::Output;
use crate::session::{Saved, Session, SessionFile, TlsFiles};

/// Log in to a running suite, as an operator (a person) or as a service account.
///
/// The session is kept in the user's config directory (`~/.config/ecrm/session.json`, or
/// `$ECRM_CONFIG_DIR`), readable by the user alone; tokens are renewed from it until it ends
/// (`ecrm logout`, or its lifetime at identity, 12 hours by default). The password or secret
/// is never stored. Without `--password-stdin`, the password is read from `ECRM_PASSWORD` or
/// asked for.
///
/// Examples:
///
///   ecrm login --username admin
///
///   printf '%s\n' "$PASSWORD" | ecrm login --username alice --password-stdin
///
///   ecrm login --client-id 0190c3a1-... --client-secret-stdin < partner-secret.txt
///
///   ecrm login --identity-url http://crm.internal:50051 --username alice
///
///   ecrm login --identity-url https://crm.internal:50051 --tls-ca ca.pem \
///       --tls-cert alice.pem --tls-key alice-key.pem --username alice
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct LoginArgs {
    /// The identity service.
    #[arg(
        long,
        env = "ECRM_IDENTITY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    identity_url: String,
    /// The profiles service; unset, identity's host on the next port, as `ecrm up` runs it.
    #[arg(long, env = "ECRM_PROFILES_URL")]
    profiles_url: Option<String>,
    /// The consent service; unset, identity's port + 2.
    #[arg(long, env = "ECRM_CONSENT_URL")]
    consent_url: Option<String>,
    /// The segmentation service; unset, identity's port + 3.
    #[arg(long, env = "ECRM_SEGMENTATION_URL")]
    segmentation_url: Option<String>,
    /// The outbound service; unset, identity's port + 4.
    #[arg(long, env = "ECRM_OUTBOUND_URL")]
    outbound_url: Option<String>,
    /// An operator's username.
    #[arg(
        long,
        env = "ECRM_USERNAME",
        required_unless_present = "client_id",
        conflicts_with = "client_id"
    )]
    username: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// A service account's client id.
    #[arg(long, env = "ECRM_CLIENT_ID")]
    client_id: Option<String>,
    /// Read the client secret from the first line of standard input (else from
    /// `ECRM_CLIENT_SECRET`, else asked for).
    #[arg(long, requires = "client_id")]
    client_secret_stdin: bool,
    #[command(flatten)]
    tls: TlsFiles,
}

/// End the session: its refresh token is refused from now on, and the session file removed.
///
/// Examples:
///
///   ecrm logout
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct LogoutArgs {}

pub async fn login(args: LoginArgs, output: Output) -> Result<(), CliError> {
    let endpoints = endpoints(&args)?;
    let tls_files = args.tls.clone().absolute()?;
    let tls = tls_files.load()?;
    let (principal, credentials) = match (&args.username, &args.client_id) {
        (Some(username), _) => {
            let password = secret(args.password_stdin, "ECRM_PASSWORD", "password")?;
            (username.clone(), Credentials::operator(username, password))
        }
        (None, Some(client_id)) => {
            let secret = secret(
                args.client_secret_stdin,
                "ECRM_CLIENT_SECRET",
                "client secret",
            )?;
            (
                client_id.clone(),
                Credentials::service_account(client_id, secret),
            )
        }
        (None, None) => {
            return Err(CliError::Usage(
                "say who logs in: --username (an operator) or --client-id (a service account)"
                    .to_owned(),
            ));
        }
    };
    let file = SessionFile::locate()?;
    // A session already there is ended first: one login, one live session.
    if let Ok(previous) = Session::open().await {
        let _ = previous.client.tokens().end_session().await;
    }
    let client = Client::connect_with_tls(endpoints.clone(), credentials, &tls)?;
    let session = client
        .tokens()
        .start_session(Service::Identity.name(), &[])
        .await
        .map_err(|status| failed_call("log in", status))?;
    let saved = Saved {
        endpoints,
        principal: principal.clone(),
        refresh_token: session.refresh_token,
        expires_at: session.expires_at,
        tokens: client.tokens().cached().await,
        tls: tls_files,
    };
    file.save(&saved)?;
    let until = saved
        .expires_at
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "it is ended".to_owned());
    output.either(
        json!({
            "principal": principal,
            "identityUrl": saved.endpoints.identity,
            "sessionExpiresAt": saved.expires_at,
            "sessionFile": file.path(),
        }),
        format!(
            "logged in as {principal} at {}; the session lasts until {until}",
            saved.endpoints.identity
        ),
    );
    Ok(())
}

pub async fn logout(_args: LogoutArgs, output: Output) -> Result<(), CliError> {
    let file = SessionFile::locate()?;
    let session = match Session::open().await {
        Ok(session) => session,
        Err(CliError::NotLoggedIn) => {
            output.either(json!({ "loggedOut": false }), "not logged in");
            return Ok(());
        }
        Err(CliError::SessionEnded) => {
            file.remove()?;
            output.either(
                json!({ "loggedOut": true }),
                "logged out (the session had ended)",
            );
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let ended = session.client.tokens().end_session().await;
    // Removed either way: a session identity could not be told of still ends at its expiry.
    file.remove()?;
    ended.map_err(|status| {
        failed_call(
            "end the session at identity (the local session is removed)",
            status,
        )
    })?;
    output.either(
        json!({ "loggedOut": true }),
        format!("logged out {}", session.principal()),
    );
    Ok(())
}

/// Identity's URL and the others', by default on the ports after identity's (with its scheme).
fn endpoints(args: &LoginArgs) -> Result<Endpoints, CliError> {
    let identity = url::Url::parse(&args.identity_url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--identity-url {:?} is not an http:// or https:// URL such as http://127.0.0.1:50051",
                args.identity_url
            ))
        })?;
    let scheme = identity.scheme();
    let host = identity.host_str().unwrap_or("127.0.0.1");
    let port = identity.port_or_known_default().unwrap_or(50051);
    let next = |offset: u16, given: &Option<String>| {
        given
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{host}:{}", port.saturating_add(offset)))
    };
    Ok(Endpoints::identity(args.identity_url.trim_end_matches('/'))
        .with(Service::Profiles, next(1, &args.profiles_url))
        .with(Service::Consent, next(2, &args.consent_url))
        .with(Service::Segmentation, next(3, &args.segmentation_url))
        .with(Service::Outbound, next(4, &args.outbound_url)))
}

/// A password or secret: from stdin's first line, the environment, or asked for.
fn secret(from_stdin: bool, env: &str, what: &str) -> Result<String, CliError> {
    let value = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Failed(format!("cannot read the {what} from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if let Ok(value) = std::env::var(env) {
        value
    } else {
        rpassword::prompt_password(format!("{what}: ")).map_err(|e| {
            CliError::Usage(format!(
                "cannot ask for the {what} ({e}): pass it on stdin with --{}-stdin or in {env}",
                if what == "password" {
                    "password"
                } else {
                    "client-secret"
                }
            ))
        })?
    };
    if value.is_empty() {
        return Err(CliError::Usage(format!("the {what} is empty")));
    }
    Ok(value)
}
