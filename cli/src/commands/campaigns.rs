//! `ecrm campaigns`: one template sent to many subjects, from the draft to the final figures.

use std::path::PathBuf;
use std::time::Duration;

use ecrm_client::proto::outbound::v1::{
    self as pb, Campaign, CampaignState, GetCampaignStatsResponse, MessageReason,
};

use super::common::label;
use crate::failure::{CliError, Doing};
use crate::output::{Output, Table, when};
use crate::session::Session;

/// The most subject ids outbound takes in one call.
const BATCH: usize = 10_000;

/// Campaigns: create a draft to a segment or a list of subjects, start it, pause or resume
/// it, and follow what became of its messages. Needs the outbound.manage scope.
#[derive(Debug, clap::Subcommand)]
pub enum CampaignsCommand {
    Create(CreateArgs),
    Start(IdArg),
    Pause(IdArg),
    Resume(IdArg),
    Stats(StatsArgs),
}

/// Create a draft campaign: nothing is sent until `ecrm campaigns start`.
///
/// The audience is a segment of the segmentation service, by name (its members are read when
/// the campaign starts), or a file of subject ids, one a line (blank lines and lines starting
/// with `#` are skipped). Every message passes the consent gate when its turn comes.
///
/// Examples:
///
///   ecrm campaigns create --name "Spring sale" --template spring_sale --channel email --purpose newsletter --segment champions
///
///   ecrm campaigns create --name "Service notice" --template notice --channel sms --purpose order_updates --subjects-file subjects.txt --per-second 20
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    group(clap::ArgGroup::new("audience").required(true).args(["segment", "subjects_file"]))
)]
pub struct CreateArgs {
    /// 1 to 200 characters.
    #[arg(long)]
    name: String,
    /// The template's key at outbound.
    #[arg(long = "template")]
    template_key: String,
    #[arg(long, value_enum)]
    channel: Channel,
    /// The consent service's purpose the messages are sent for.
    #[arg(long = "purpose")]
    purpose_key: String,
    /// The segment whose members receive it, by name.
    #[arg(long)]
    segment: Option<String>,
    /// A file of subject ids, one a line.
    #[arg(long)]
    subjects_file: Option<PathBuf>,
    /// At most this many messages a second; as fast as the channel takes them when unset.
    #[arg(long, default_value_t = 0)]
    per_second: u32,
    /// The template's locale; each recipient's own when unset.
    #[arg(long)]
    locale: Option<String>,
    /// The template's variables, the same for every recipient, as a JSON object.
    #[arg(long)]
    variables: Option<String>,
}

/// A campaign, by id.
///
/// Examples:
///
///   ecrm campaigns start 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10
///
///   ecrm campaigns pause 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10
///
///   ecrm campaigns resume 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct IdArg {
    /// The campaign's id.
    campaign_id: String,
}

/// What became of a campaign's messages: queued, sent, deferred, blocked (by reason), failed
/// and cancelled.
///
/// With `--watch`, follows the campaign with a progress bar until it has nothing left to send,
/// then prints the final figures.
///
/// Examples:
///
///   ecrm campaigns stats 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10
///
///   ecrm campaigns stats 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10 --watch
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct StatsArgs {
    campaign_id: String,
    /// Follow the campaign until it has nothing left to send.
    #[arg(long)]
    watch: bool,
    /// Seconds between two looks when watching.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3600))]
    every: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Channel {
    Email,
    Sms,
    Webhook,
}

impl From<Channel> for pb::Channel {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Email => pb::Channel::Email,
            Channel::Sms => pb::Channel::Sms,
            Channel::Webhook => pb::Channel::Webhook,
        }
    }
}

type Client = pb::campaigns_client::CampaignsClient<ecrm_client::Authorized>;

pub async fn run(
    command: CampaignsCommand,
    session: &Session,
    output: Output,
) -> Result<(), CliError> {
    let mut campaigns = session.client.campaigns()?;
    match command {
        CampaignsCommand::Create(args) => create(&mut campaigns, args, output).await?,
        CampaignsCommand::Start(args) => {
            let started = campaigns
                .start_campaign(pb::StartCampaignRequest {
                    campaign_id: args.campaign_id,
                })
                .await
                .doing("start the campaign")?;
            output.show(&started, |s| record(s.campaign.as_ref()));
        }
        CampaignsCommand::Pause(args) => {
            let paused = campaigns
                .pause_campaign(pb::PauseCampaignRequest {
                    campaign_id: args.campaign_id,
                })
                .await
                .doing("pause the campaign")?;
            output.show(&paused, |p| record(p.campaign.as_ref()));
        }
        CampaignsCommand::Resume(args) => {
            let resumed = campaigns
                .resume_campaign(pb::ResumeCampaignRequest {
                    campaign_id: args.campaign_id,
                })
                .await
                .doing("resume the campaign")?;
            output.show(&resumed, |r| record(r.campaign.as_ref()));
        }
        CampaignsCommand::Stats(args) => {
            let stats = if args.watch {
                watch(
                    &mut campaigns,
                    &args.campaign_id,
                    Duration::from_secs(args.every),
                )
                .await?
            } else {
                stats(&mut campaigns, &args.campaign_id).await?
            };
            output.show(&stats, stats_table);
        }
    }
    Ok(())
}

async fn create(campaigns: &mut Client, args: CreateArgs, output: Output) -> Result<(), CliError> {
    let subjects = match &args.subjects_file {
        Some(path) => read_subjects(path)?,
        None => Vec::new(),
    };
    let mut batches = subjects.chunks(BATCH);
    let created = campaigns
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(Campaign {
                name: args.name,
                segment: args.segment.unwrap_or_default(),
                explicit_list: args.subjects_file.is_some(),
                channel: pb::Channel::from(args.channel).into(),
                template_key: args.template_key,
                locale: args.locale.unwrap_or_default(),
                variables_json: args.variables.unwrap_or_default(),
                purpose_key: args.purpose_key,
                per_second: args.per_second,
                ..Default::default()
            }),
            subject_ids: batches.next().map(<[String]>::to_vec).unwrap_or_default(),
        })
        .await
        .doing("create the campaign")?;
    let mut campaign = created.campaign;
    let campaign_id = campaign
        .as_ref()
        .map(|c| c.campaign_id.clone())
        .unwrap_or_default();
    for batch in batches {
        campaign = campaigns
            .add_campaign_recipients(pb::AddCampaignRecipientsRequest {
                campaign_id: campaign_id.clone(),
                subject_ids: batch.to_vec(),
            })
            .await
            .doing(&format!(
                "add recipients to the draft campaign {campaign_id}"
            ))?
            .campaign;
    }
    let response = pb::CreateCampaignResponse { campaign };
    output.show(&response, |r| record(r.campaign.as_ref()));
    Ok(())
}

/// The subject ids in `path`, one a line.
fn read_subjects(path: &PathBuf) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::File {
        doing: "read the subjects file",
        path: path.clone(),
        source,
    })?;
    let subjects: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if subjects.is_empty() {
        return Err(CliError::Usage(format!(
            "--subjects-file: {} holds no subject id",
            path.display()
        )));
    }
    Ok(subjects)
}

async fn stats(
    campaigns: &mut Client,
    campaign_id: &str,
) -> Result<GetCampaignStatsResponse, CliError> {
    campaigns
        .get_campaign_stats(pb::GetCampaignStatsRequest {
            campaign_id: campaign_id.to_owned(),
        })
        .await
        .doing("read the campaign's figures")
}

/// Messages that are done with, one way or another.
fn settled(stats: &GetCampaignStatsResponse) -> u64 {
    stats.sent + stats.blocked + stats.failed + stats.cancelled
}

/// Reads the figures every `every` until nothing is queued or deferred, with a progress bar
/// on stderr (drawn only on a terminal).
async fn watch(
    campaigns: &mut Client,
    campaign_id: &str,
    every: Duration,
) -> Result<GetCampaignStatsResponse, CliError> {
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{bar:40}] {pos}/{len} settled ({eta} left) {msg}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    loop {
        let stats = match stats(campaigns, campaign_id).await {
            Ok(stats) => stats,
            Err(error) => {
                bar.finish_and_clear();
                return Err(error);
            }
        };
        let state = CampaignState::try_from(stats.state).unwrap_or_default();
        if state == CampaignState::Draft {
            bar.finish_and_clear();
            // A draft sends nothing: watching it would never end.
            return Err(CliError::Call {
                doing: "cannot watch the campaign".to_owned(),
                status: tonic::Status::failed_precondition(format!(
                    "it is a draft, and sends nothing until `ecrm campaigns start {campaign_id}`"
                )),
            });
        }
        bar.set_length(stats.recipients);
        bar.set_position(settled(&stats));
        bar.set_message(format!(
            "{}: {} sent, {} deferred, {} blocked, {} failed",
            state_label(stats.state),
            stats.sent,
            stats.deferred,
            stats.blocked,
            stats.failed
        ));
        let done = matches!(state, CampaignState::Completed | CampaignState::Cancelled)
            || stats.queued + stats.deferred == 0;
        if done {
            bar.finish_and_clear();
            return Ok(stats);
        }
        tokio::time::sleep(every).await;
    }
}

fn state_label(state: i32) -> String {
    CampaignState::try_from(state)
        .map(|s| label(s.as_str_name(), "CAMPAIGN_STATE_"))
        .unwrap_or_default()
}

fn stats_table(stats: &GetCampaignStatsResponse) -> Table {
    let mut fields: Vec<(String, String)> = [
        ("state", state_label(stats.state)),
        ("recipients", stats.recipients.to_string()),
        ("queued", stats.queued.to_string()),
        ("sent", stats.sent.to_string()),
        ("deferred", stats.deferred.to_string()),
        ("blocked", stats.blocked.to_string()),
    ]
    .map(|(field, value)| (field.to_owned(), value))
    .to_vec();
    for blocked in &stats.blocked_by_reason {
        let reason = MessageReason::try_from(blocked.reason)
            .map(|r| label(r.as_str_name(), "MESSAGE_REASON_"))
            .unwrap_or_default();
        fields.push((format!("  {reason}"), blocked.count.to_string()));
    }
    fields.push(("failed".to_owned(), stats.failed.to_string()));
    fields.push(("cancelled".to_owned(), stats.cancelled.to_string()));
    let fields: Vec<(&str, String)> = fields
        .iter()
        .map(|(field, value)| (field.as_str(), value.clone()))
        .collect();
    Table::record(&fields)
}

fn record(campaign: Option<&Campaign>) -> Table {
    let Some(campaign) = campaign else {
        return Table::record(&[]);
    };
    let audience = if campaign.explicit_list {
        "explicit list".to_owned()
    } else {
        format!("segment {}", campaign.segment)
    };
    let channel = pb::Channel::try_from(campaign.channel)
        .map(|c| label(c.as_str_name(), "CHANNEL_"))
        .unwrap_or_default();
    let pace = if campaign.per_second == 0 {
        "as fast as the channel takes them".to_owned()
    } else {
        format!("{} a second", campaign.per_second)
    };
    Table::record(&[
        ("id", campaign.campaign_id.clone()),
        ("name", campaign.name.clone()),
        ("state", state_label(campaign.state)),
        ("audience", audience),
        ("recipients", campaign.recipients.to_string()),
        ("channel", channel),
        ("template", campaign.template_key.clone()),
        ("purpose", campaign.purpose_key.clone()),
        ("marketing", campaign.marketing.to_string()),
        ("pace", pace),
        ("created", when(campaign.created_at.as_ref())),
        ("started", when(campaign.started_at.as_ref())),
    ])
}
