//! `ecrm consent`: record a subject's decisions, read them back, and check their ledger.

use ecrm_client::proto::common::v1::PageRequest;
use ecrm_client::proto::consent::v1::{self as pb, Decision, LedgerEntry};
use serde_json::json;

use super::common::{SubjectArg, all_pages, label};
use super::profiles::subject_id;
use crate::failure::{CliError, Doing};
use crate::output::{Output, Table, when};
use crate::session::Session;

/// The purpose a subject named by an identifier is looked up at profiles for.
const LOOKUP_PURPOSE: &str = "consent_management";

/// Consent: what each subject agreed to, per purpose and channel, in a hash-chained ledger.
#[derive(Debug, clap::Subcommand)]
pub enum ConsentCommand {
    Grant(GrantArgs),
    Withdraw(WithdrawArgs),
    State(StateArgs),
    History(HistoryArgs),
    Verify(VerifyArgs),
}

/// Record that a subject granted consent to a purpose on a channel.
///
/// A grant names the notice the subject saw: `--notice-version latest` takes the purpose's
/// most recent one.
///
/// Examples:
///
///   ecrm consent grant --email ada@example.com --purpose newsletter --channel email --notice-version latest --source call_centre
///
///   ecrm consent grant --subject 0190c3a1-... --purpose newsletter --channel sms --notice-version 9f86d08...
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct GrantArgs {
    #[command(flatten)]
    subject: SubjectArg,
    /// The purpose's key.
    #[arg(long)]
    purpose: String,
    #[arg(long, value_enum)]
    channel: Channel,
    /// Where the decision was collected, e.g. checkout, call_centre.
    #[arg(long, default_value = "ecrm_cli")]
    source: String,
    /// The version of the notice the subject saw, or `latest`.
    #[arg(long)]
    notice_version: String,
}

/// Record that a subject withdrew their consent to a purpose on a channel.
///
/// Examples:
///
///   ecrm consent withdraw --email ada@example.com --purpose newsletter --channel email --source preference_centre
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct WithdrawArgs {
    #[command(flatten)]
    subject: SubjectArg,
    #[arg(long)]
    purpose: String,
    #[arg(long, value_enum)]
    channel: Channel,
    #[arg(long, default_value = "ecrm_cli")]
    source: String,
}

/// The decision in force for each purpose and channel the subject was ever asked about.
///
/// Examples:
///
///   ecrm consent state --email ada@example.com
///
///   ecrm consent state --subject 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10 --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct StateArgs {
    #[command(flatten)]
    subject: SubjectArg,
}

/// Whether the subject's ledger is intact: every entry's hash recomputes and the latest signed
/// checkpoint still holds. Exits 1, naming the first broken entry, when it is not.
///
/// Examples:
///
///   ecrm consent verify --email ada@example.com
///
///   ecrm consent verify --subject 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10 --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    #[command(flatten)]
    subject: SubjectArg,
}

/// The subject's ledger entries, oldest first, with their hashes.
///
/// Examples:
///
///   ecrm consent history --email ada@example.com
///
///   ecrm consent history --subject 0190c3a1-... --limit 10 --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct HistoryArgs {
    #[command(flatten)]
    subject: SubjectArg,
    /// At most this many entries.
    #[arg(long, default_value_t = 500)]
    limit: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Channel {
    Email,
    Sms,
    Push,
    Phone,
    Post,
    Partner,
}

impl From<Channel> for pb::Channel {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Email => pb::Channel::Email,
            Channel::Sms => pb::Channel::Sms,
            Channel::Push => pb::Channel::Push,
            Channel::Phone => pb::Channel::Phone,
            Channel::Post => pb::Channel::Post,
            Channel::Partner => pb::Channel::Partner,
        }
    }
}

pub async fn run(
    command: ConsentCommand,
    session: &Session,
    output: Output,
) -> Result<(), CliError> {
    let mut consents = session.client.consents()?;
    match command {
        ConsentCommand::Grant(args) => {
            let subject_id = subject_id(session, &args.subject, LOOKUP_PURPOSE).await?;
            let notice_version = if args.notice_version == "latest" {
                latest_notice(session, &args.purpose).await?
            } else {
                args.notice_version
            };
            let recorded = consents
                .record_consent(pb::RecordConsentRequest {
                    subject_id,
                    purpose_key: args.purpose,
                    decision: Decision::Granted.into(),
                    channel: pb::Channel::from(args.channel).into(),
                    collection_point: args.source,
                    notice_version,
                    ..Default::default()
                })
                .await
                .doing("record the grant")?;
            output.show(&recorded, |r| entry_record(r.entry.as_ref()));
        }
        ConsentCommand::Withdraw(args) => {
            let subject_id = subject_id(session, &args.subject, LOOKUP_PURPOSE).await?;
            let recorded = consents
                .record_consent(pb::RecordConsentRequest {
                    subject_id,
                    purpose_key: args.purpose,
                    decision: Decision::Withdrawn.into(),
                    channel: pb::Channel::from(args.channel).into(),
                    collection_point: args.source,
                    ..Default::default()
                })
                .await
                .doing("record the withdrawal")?;
            output.show(&recorded, |r| entry_record(r.entry.as_ref()));
        }
        ConsentCommand::State(args) => {
            let subject_id = subject_id(session, &args.subject, LOOKUP_PURPOSE).await?;
            let state = consents
                .get_consent_state(pb::GetConsentStateRequest { subject_id })
                .await
                .doing("read the consent state")?;
            output.show(&state, |r| {
                let mut table = Table::new([
                    "purpose", "channel", "decision", "decided", "expires", "notice",
                ])
                .when_empty("no decisions recorded");
                for state in &r.states {
                    let decision = if state.expired {
                        "expired".to_owned()
                    } else {
                        decision_label(state.decision)
                    };
                    table.row(vec![
                        state.purpose_key.clone(),
                        channel_label(state.channel),
                        decision,
                        when(state.decided_at.as_ref()),
                        when(state.expires_at.as_ref()),
                        short(&state.notice_version),
                    ]);
                }
                table
            });
        }
        ConsentCommand::History(args) => {
            let subject_id = subject_id(session, &args.subject, LOOKUP_PURPOSE).await?;
            let entries = all_pages(args.limit, |page_token| {
                let mut client = consents.clone();
                let request = pb::ListConsentHistoryRequest {
                    subject_id: subject_id.clone(),
                    page: Some(PageRequest {
                        page_size: 500,
                        page_token,
                    }),
                };
                async move {
                    let page = client
                        .list_consent_history(request)
                        .await
                        .doing("read the consent history")?;
                    let next = page.page.map(|p| p.next_page_token).unwrap_or_default();
                    Ok((page.entries, next))
                }
            })
            .await?;
            let response = pb::ListConsentHistoryResponse {
                entries,
                page: None,
            };
            output.show(&response, |r| {
                let mut table = Table::new([
                    "#", "recorded", "purpose", "channel", "decision", "source", "by", "hash",
                ])
                .when_empty("no decisions recorded");
                for entry in &r.entries {
                    table.row(vec![
                        entry.sequence.to_string(),
                        when(entry.recorded_at.as_ref()),
                        entry.purpose_key.clone(),
                        channel_label(entry.channel),
                        decision_label(entry.decision),
                        entry.collection_point.clone(),
                        entry.recorded_by_kind.clone(),
                        short(&entry.hash),
                    ]);
                }
                table
            });
        }
        ConsentCommand::Verify(args) => {
            let subject_id = subject_id(session, &args.subject, LOOKUP_PURPOSE).await?;
            let verified = consents
                .verify_ledger(pb::VerifyLedgerRequest {
                    subject_id: subject_id.clone(),
                })
                .await
                .doing("verify the ledger")?;
            let text = if verified.intact {
                format!(
                    "intact: {} entries of {subject_id} recompute",
                    verified.entries_checked
                )
            } else {
                format!(
                    "NOT intact: entry {} (#{}) of {}: {}",
                    verified.first_broken_entry_id,
                    verified.first_broken_sequence,
                    verified.first_broken_subject_id,
                    verified.problem
                )
            };
            output.either(
                json!({
                    "subjectId": subject_id,
                    "intact": verified.intact,
                    "entriesChecked": verified.entries_checked,
                    "firstBrokenEntryId": verified.first_broken_entry_id,
                    "firstBrokenSequence": verified.first_broken_sequence,
                    "problem": verified.problem,
                }),
                text,
            );
            if !verified.intact {
                return Err(CliError::Failed(format!(
                    "the consent ledger of {subject_id} is not intact: {}",
                    verified.problem
                )));
            }
        }
    }
    Ok(())
}

/// The most recent notice published for `purpose`.
async fn latest_notice(session: &Session, purpose: &str) -> Result<String, CliError> {
    let found = session
        .client
        .purposes()?
        .get_purpose(pb::GetPurposeRequest {
            key: purpose.to_owned(),
        })
        .await
        .doing("read the purpose")?;
    found
        .purpose
        .and_then(|p| p.notice_versions.last().cloned())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--notice-version: purpose {purpose} has no published notice yet"
            ))
        })
}

fn decision_label(decision: i32) -> String {
    Decision::try_from(decision)
        .map(|d| label(d.as_str_name(), "DECISION_"))
        .unwrap_or_default()
}

fn channel_label(channel: i32) -> String {
    pb::Channel::try_from(channel)
        .map(|c| label(c.as_str_name(), "CHANNEL_"))
        .unwrap_or_default()
}

/// The first 12 hex digits of a hash: enough to tell entries apart on screen.
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn entry_record(entry: Option<&LedgerEntry>) -> Table {
    let Some(entry) = entry else {
        return Table::record(&[]);
    };
    Table::record(&[
        ("entry", entry.entry_id.clone()),
        ("subject", entry.subject_id.clone()),
        ("sequence", entry.sequence.to_string()),
        ("purpose", entry.purpose_key.clone()),
        ("channel", channel_label(entry.channel)),
        ("decision", decision_label(entry.decision)),
        ("source", entry.collection_point.clone()),
        ("notice", entry.notice_version.clone()),
        ("recorded", when(entry.recorded_at.as_ref())),
        ("hash", entry.hash.clone()),
    ])
}
