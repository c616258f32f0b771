//! `ecrm keys`: the Ed25519 keys identity signs tokens with.

use ecrm_client::proto::identity::v1::{self as pb, SigningKeyState};

use super::common::label;
use crate::failure::{CliError, Doing};
use crate::output::{Output, Table, when};
use crate::session::Session;

/// The keys that sign tokens: the active one, the next one (already published, so services
/// trust it before it signs) and retired ones still verifying older tokens. Needs the
/// identity.admin scope.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    Rotate(RotateArgs),
    List(ListArgs),
}

/// Rotate the signing keys: the next key becomes active, the active one retires (it verifies
/// until the last token it signed expires) and a new next key is made. Shows the keys after.
///
/// Examples:
///
///   ecrm keys rotate
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct RotateArgs {}

/// List the signing keys and their states.
///
/// Examples:
///
///   ecrm keys list
///
///   ecrm keys list --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ListArgs {}

pub async fn run(command: KeysCommand, session: &Session, output: Output) -> Result<(), CliError> {
    let mut keys = session.client.signing_keys()?;
    if let KeysCommand::Rotate(RotateArgs {}) = command {
        keys.rotate_signing_keys(pb::RotateSigningKeysRequest {})
            .await
            .doing("rotate the signing keys")?;
    }
    let listed = keys
        .list_signing_keys(pb::ListSigningKeysRequest {})
        .await
        .doing("list the signing keys")?;
    output.show(&listed, |listed| {
        let mut table = Table::new([
            "kid",
            "state",
            "created",
            "activated",
            "retired",
            "verifies until",
        ])
        .when_empty("no signing keys");
        for key in &listed.keys {
            table.row(vec![
                key.kid.clone(),
                SigningKeyState::try_from(key.state)
                    .map(|s| label(s.as_str_name(), "SIGNING_KEY_STATE_"))
                    .unwrap_or_default(),
                when(key.created_at.as_ref()),
                when(key.activated_at.as_ref()),
                when(key.retired_at.as_ref()),
                when(key.verify_until.as_ref()),
            ]);
        }
        table
    });
    Ok(())
}
