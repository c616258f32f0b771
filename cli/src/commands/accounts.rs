//! `ecrm accounts`: the service accounts of internal services and partners, and their secrets.

use chrono::NaiveDate;
use ecrm_client::proto::common::v1::PageRequest;
use ecrm_client::proto::identity::v1::{self as pb, PrincipalKind, ServiceAccount};

use super::common::{all_pages, label, parse_date, start_of};
use crate::failure::{CliError, Doing};
use crate::output::{Output, Table, when};
use crate::session::Session;

/// Service accounts: what internal services and partner systems authenticate as (OAuth 2.0
/// client credentials). Needs the identity.admin scope.
#[derive(Debug, clap::Subcommand)]
pub enum AccountsCommand {
    Create(CreateArgs),
    List(ListArgs),
    AddSecret(AddSecretArgs),
    Disable(IdArg),
}

/// Create a service account with its first secret.
///
/// The client secret is printed this once and cannot be read again: store it where the
/// service will read it before you close the terminal (a lost secret is replaced with
/// `ecrm accounts add-secret`).
///
/// Examples:
///
///   ecrm accounts create --name "checkout service" --kind internal --scope profiles.write --scope consent.read
///
///   ecrm accounts create --name "Air Example sync" --kind partner --partner-id air-example --scope profiles.partner
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct CreateArgs {
    /// What the account is, for people.
    #[arg(long)]
    name: String,
    #[arg(long, value_enum)]
    kind: Kind,
    /// The partner the account acts for; required with `--kind partner`.
    #[arg(long, required_if_eq("kind", "partner"))]
    partner_id: Option<String>,
    /// A scope the account may ask for (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// When the first secret stops working (YYYY-MM-DD); never when unset.
    #[arg(long, value_parser = parse_date)]
    secret_expires: Option<NaiveDate>,
}

/// List the service accounts, with their scopes and how many secrets each has.
///
/// Examples:
///
///   ecrm accounts list
///
///   ecrm accounts list --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ListArgs {
    /// At most this many.
    #[arg(long, default_value_t = 500)]
    limit: usize,
}

/// Add a secret to an account, printed this once.
///
/// An account has at most two active secrets, so a secret is rotated without downtime: add
/// the new one, deploy it, then remove the old one (ServiceAccounts.RemoveSecret; a third
/// secret is refused until then).
///
/// Examples:
///
///   ecrm accounts add-secret checkout-7f3a
///
///   ecrm accounts add-secret checkout-7f3a --expires 2027-06-30
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct AddSecretArgs {
    /// The account's id or client id.
    id: String,
    /// When the new secret stops working (YYYY-MM-DD); never when unset.
    #[arg(long, value_parser = parse_date)]
    expires: Option<NaiveDate>,
}

/// Disable an account: it gets no new token, and every service refuses its tokens within
/// their refresh interval.
///
/// Examples:
///
///   ecrm accounts disable checkout-7f3a
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct IdArg {
    /// The account's id or client id.
    id: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// A platform team's service.
    Internal,
    /// A partner system, bound to one partner id.
    Partner,
}

impl From<Kind> for PrincipalKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Internal => PrincipalKind::Internal,
            Kind::Partner => PrincipalKind::Partner,
        }
    }
}

const SHOWN_ONCE: &str =
    "the client secret is shown this once and cannot be read again: store it now";

pub async fn run(
    command: AccountsCommand,
    session: &Session,
    output: Output,
) -> Result<(), CliError> {
    let mut accounts = session.client.service_accounts()?;
    match command {
        AccountsCommand::Create(args) => {
            let created = accounts
                .create_service_account(pb::CreateServiceAccountRequest {
                    display_name: args.name,
                    kind: PrincipalKind::from(args.kind).into(),
                    partner_id: args.partner_id.unwrap_or_default(),
                    scopes: args.scopes,
                    secret_expires_at: args.secret_expires.map(start_of),
                })
                .await
                .doing("create the service account")?;
            output.show(&created, |created| {
                let mut fields = account_fields(created.account.as_ref());
                fields.push(("client secret", created.client_secret.clone()));
                Table::record(&fields)
            });
            if !output.json() {
                say!("\n{SHOWN_ONCE}");
            }
        }
        AccountsCommand::List(args) => {
            let found = all_pages(args.limit, |page_token| {
                let mut client = accounts.clone();
                async move {
                    let page = client
                        .list_service_accounts(pb::ListServiceAccountsRequest {
                            page: Some(PageRequest {
                                page_size: 500,
                                page_token,
                            }),
                        })
                        .await
                        .doing("list service accounts")?;
                    let next = page.page.map(|p| p.next_page_token).unwrap_or_default();
                    Ok((page.accounts, next))
                }
            })
            .await?;
            let response = pb::ListServiceAccountsResponse {
                accounts: found,
                page: None,
            };
            output.show(&response, |response| {
                let mut table = Table::new([
                    "id",
                    "client id",
                    "name",
                    "kind",
                    "partner",
                    "scopes",
                    "secrets",
                    "disabled",
                ])
                .when_empty("no service accounts");
                for account in &response.accounts {
                    table.row(vec![
                        account.id.clone(),
                        account.client_id.clone(),
                        account.display_name.clone(),
                        kind_label(account.kind),
                        account.partner_id.clone(),
                        account.scopes.join(" "),
                        account.secrets.len().to_string(),
                        when(account.disabled_at.as_ref()),
                    ]);
                }
                table
            });
        }
        AccountsCommand::AddSecret(args) => {
            let added = accounts
                .add_secret(pb::AddSecretRequest {
                    id: args.id,
                    expires_at: args.expires.map(start_of),
                })
                .await
                .doing("add a secret")?;
            output.show(&added, |added| {
                let secret = added.secret.clone().unwrap_or_default();
                Table::record(&[
                    ("secret id", secret.secret_id),
                    ("created", when(secret.created_at.as_ref())),
                    ("expires", when(secret.expires_at.as_ref())),
                    ("client secret", added.client_secret.clone()),
                ])
            });
            if !output.json() {
                say!("\n{SHOWN_ONCE}");
            }
        }
        AccountsCommand::Disable(args) => {
            let disabled = accounts
                .disable_service_account(pb::DisableServiceAccountRequest { id: args.id })
                .await
                .doing("disable the service account")?;
            output.show(&disabled, |d| {
                Table::record(&account_fields(d.account.as_ref()))
            });
        }
    }
    Ok(())
}

fn kind_label(kind: i32) -> String {
    PrincipalKind::try_from(kind)
        .map(|k| label(k.as_str_name(), "PRINCIPAL_KIND_"))
        .unwrap_or_default()
}

fn account_fields(account: Option<&ServiceAccount>) -> Vec<(&'static str, String)> {
    let Some(account) = account else {
        return Vec::new();
    };
    let mut fields = vec![
        ("id", account.id.clone()),
        ("client id", account.client_id.clone()),
        ("name", account.display_name.clone()),
        ("kind", kind_label(account.kind)),
    ];
    if !account.partner_id.is_empty() {
        fields.push(("partner", account.partner_id.clone()));
    }
    fields.push(("scopes", account.scopes.join(" ")));
    fields.push(("secrets", account.secrets.len().to_string()));
    fields.push(("created", when(account.created_at.as_ref())));
    if account.disabled_at.is_some() {
        fields.push(("disabled", when(account.disabled_at.as_ref())));
    }
    fields
}
