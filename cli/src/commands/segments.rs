//! `ecrm segments`: rule segments and their members, and RFM scores.

use std::time::Duration;

use ecrm_client::proto::common::v1::PageRequest;
use ecrm_client::proto::segmentation::v1::{self as pb, RfmJob, RfmJobState};

use super::common::{SubjectArg, label};
use super::profiles::subject_id;
use crate::failure::{CliError, Doing};
use crate::output::{Output, Table, when};
use crate::session::Session;

/// The purpose a subject named by an identifier is looked up at profiles for.
const LOOKUP_PURPOSE: &str = "analytics";

/// How often `rfm --recompute` asks how the computation is going.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Segments of customers by rule, kept up to date as their facts change, and RFM scoring.
#[derive(Debug, clap::Subcommand)]
pub enum SegmentsCommand {
    List(ListArgs),
    Define(DefineArgs),
    Members(MembersArgs),
    Explain(ExplainArgs),
    Rfm(RfmArgs),
}

/// Every segment, with its rule and whether its first population has finished.
///
/// Examples:
///
///   ecrm segments list
///
///   ecrm segments list --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ListArgs {}

/// Define a segment by a rule. Conditions `field OP literal` (== != < <= > >=), `field in
/// [..]`, `field not in [..]`, combined with not, and, or and parentheses, over the fields
/// orders, returns, spend, orders_30d/90d/365d, spend_30d/90d/365d, visit_days,
/// days_since_first_order, days_since_last_order, days_since_last_visit, days_as_customer,
/// rfm.segment, rfm.r, rfm.f, rfm.m, country, locale and custom.<key>.
///
/// Members are found in the background; `ecrm segments list` shows when that is done.
///
/// Examples:
///
///   ecrm segments define french-regulars --rule 'country == "FR" and orders_90d >= 2'
///
///   ecrm segments define vip --rule 'rfm.segment in ["Champions", "Loyal"]' --description "best customers"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DefineArgs {
    /// 1 to 64 of a-z, 0-9, '_' and '-'.
    name: String,
    /// The rule, in the segment expression language.
    #[arg(long)]
    rule: String,
    #[arg(long, default_value = "")]
    description: String,
}

/// A segment's members, in subject id order.
///
/// Examples:
///
///   ecrm segments members french-regulars
///
///   ecrm segments members vip --limit 5000 --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct MembersArgs {
    segment: String,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// Why a customer is, or is not, in a segment: each condition of its rule with their value.
///
/// Examples:
///
///   ecrm segments explain french-regulars --email ada@example.com
///
///   ecrm segments explain vip --subject 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ExplainArgs {
    segment: String,
    #[command(flatten)]
    subject: SubjectArg,
}

/// RFM: each named segment's size and value in the latest computation, or one customer's
/// scores with `--subject` (or `--email`...). `--recompute` first runs a new computation and
/// follows it to the end.
///
/// Examples:
///
///   ecrm segments rfm
///
///   ecrm segments rfm --recompute --window-days 180
///
///   ecrm segments rfm --email ada@example.com
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct RfmArgs {
    #[command(flatten)]
    subject: OptionalSubject,
    /// Compute the scores again first.
    #[arg(long)]
    recompute: bool,
    /// With --recompute: days looked back (1 to 3660); 365 when unset.
    #[arg(
        long,
        requires = "recompute",
        default_value_t = 0,
        hide_default_value = true
    )]
    window_days: u32,
    /// With --recompute: score levels (2 to 10); 5 when unset.
    #[arg(
        long,
        requires = "recompute",
        default_value_t = 0,
        hide_default_value = true
    )]
    bins: u32,
}

/// A customer, optionally: the same flags as elsewhere, none required.
#[derive(Debug, Clone, clap::Args)]
#[group(required = false, multiple = false)]
pub struct OptionalSubject {
    /// The customer's id (a UUID).
    #[arg(long)]
    subject: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    #[arg(long)]
    loyalty_number: Option<String>,
}

impl OptionalSubject {
    fn get(&self) -> Option<SubjectArg> {
        let named = self.subject.is_some()
            || self.email.is_some()
            || self.phone.is_some()
            || self.loyalty_number.is_some();
        named.then(|| SubjectArg {
            subject: self.subject.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            loyalty_number: self.loyalty_number.clone(),
        })
    }
}

pub async fn run(
    command: SegmentsCommand,
    session: &Session,
    output: Output,
) -> Result<(), CliError> {
    match command {
        SegmentsCommand::List(ListArgs {}) => {
            let listed = session
                .client
                .segments()?
                .list_segments(pb::ListSegmentsRequest {})
                .await
                .doing("list segments")?;
            output.show(&listed, |r| {
                let mut table = Table::new(["name", "rule", "populated", "description"])
                    .when_empty("no segments");
                for segment in &r.segments {
                    let populated = match &segment.populated_at {
                        Some(at) => when(Some(at)),
                        None => "in progress".to_owned(),
                    };
                    table.row(vec![
                        segment.name.clone(),
                        segment.rule.clone(),
                        populated,
                        segment.description.clone(),
                    ]);
                }
                table
            });
        }
        SegmentsCommand::Define(args) => {
            let defined = session
                .client
                .segments()?
                .define_segment(pb::DefineSegmentRequest {
                    segment: Some(pb::Segment {
                        name: args.name,
                        description: args.description,
                        rule: args.rule,
                        ..Default::default()
                    }),
                })
                .await
                .doing("define the segment")?;
            output.show(&defined, |r| {
                let segment = r.segment.clone().unwrap_or_default();
                Table::record(&[
                    ("name", segment.name),
                    ("rule", segment.rule),
                    ("fields", segment.fields.join(", ")),
                    (
                        "created",
                        if r.created {
                            "yes"
                        } else {
                            "no, already defined"
                        }
                        .to_owned(),
                    ),
                ])
            });
        }
        SegmentsCommand::Members(args) => members(session, args, output).await?,
        SegmentsCommand::Explain(args) => {
            let subject_id = subject_id(session, &args.subject, LOOKUP_PURPOSE).await?;
            let explained = session
                .client
                .segments()?
                .explain_membership(pb::ExplainMembershipRequest {
                    segment: args.segment.clone(),
                    subject_id,
                })
                .await
                .doing("explain the membership")?;
            output.show(&explained, |r| {
                let mut table = Table::new(["condition", "value", "result"]);
                for condition in &r.conditions {
                    let value = if condition.value.is_empty() {
                        "(none)".to_owned()
                    } else {
                        condition.value.clone()
                    };
                    table.row(vec![
                        condition.condition.clone(),
                        value,
                        condition.result.to_string(),
                    ]);
                }
                let verdict = if r.member { "member" } else { "not a member" };
                let why = if r.restricted {
                    " (restricted: in no segment)"
                } else if r.objected {
                    " (objected to profiling: in no segment)"
                } else {
                    ""
                };
                table.row(vec![
                    format!("=> {verdict} of {}{why}", args.segment),
                    String::new(),
                    r.member.to_string(),
                ]);
                table
            });
        }
        SegmentsCommand::Rfm(args) => rfm(session, args, output).await?,
    }
    Ok(())
}

/// Reads pages of members until `limit`; the response's total and cursor are the first
/// page's.
async fn members(session: &Session, args: MembersArgs, output: Output) -> Result<(), CliError> {
    let mut segments = session.client.segments()?;
    let mut all = pb::GetMembersResponse::default();
    let mut token = String::new();
    loop {
        let page_size = u32::try_from(args.limit.saturating_sub(all.members.len()).min(500))
            .unwrap_or(500)
            .max(1);
        let page = segments
            .get_members(pb::GetMembersRequest {
                segment: args.segment.clone(),
                page: Some(PageRequest {
                    page_size,
                    page_token: token,
                }),
            })
            .await
            .doing("read the segment's members")?;
        if all.cursor.is_empty() {
            all.cursor = page.cursor;
            all.total = page.total;
        }
        all.members.extend(page.members);
        token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() || all.members.len() >= args.limit {
            all.members.truncate(args.limit);
            break;
        }
    }
    output.show(&all, |r| {
        let mut table = Table::new(["subject", "joined"]).when_empty("no members");
        for member in &r.members {
            table.row(vec![
                member.subject_id.clone(),
                when(member.joined_at.as_ref()),
            ]);
        }
        table
    });
    if !output.json() && all.total > all.members.len() as u64 {
        say!(
            "({} of {} members; --limit for more)",
            all.members.len(),
            all.total
        );
    }
    Ok(())
}

async fn rfm(session: &Session, args: RfmArgs, output: Output) -> Result<(), CliError> {
    let mut client = session.client.rfm()?;
    if args.recompute {
        let started = client
            .compute_rfm(pb::ComputeRfmRequest {
                window_days: args.window_days,
                bins: args.bins,
                ..Default::default()
            })
            .await
            .doing("start the RFM computation")?;
        let job = started.job.unwrap_or_default();
        let job = follow(&mut client, job, output).await?;
        if job.state == i32::from(RfmJobState::Failed) {
            return Err(CliError::Failed(format!(
                "the RFM computation {} failed: {}",
                job.job_id, job.error
            )));
        }
    }
    match args.subject.get() {
        Some(subject) => {
            let subject_id = subject_id(session, &subject, LOOKUP_PURPOSE).await?;
            let score = client
                .get_rfm(pb::GetRfmRequest { subject_id })
                .await
                .doing("read the customer's RFM score")?;
            output.show(&score, |r| {
                let score = r.score.clone().unwrap_or_default();
                Table::record(&[
                    ("subject", score.subject_id),
                    ("segment", score.segment),
                    (
                        "r / f / m",
                        format!("{} / {} / {}", score.r, score.f, score.m),
                    ),
                    ("recency (days)", score.recency_days.to_string()),
                    ("orders", score.frequency.to_string()),
                    ("monetary", money(score.monetary_minor, &score.currency)),
                    ("computation", score.job_id),
                ])
            });
        }
        None => {
            let summary = client
                .rfm_summary(pb::RfmSummaryRequest {})
                .await
                .doing("read the RFM summary")?;
            output.show(&summary, |r| {
                let mut table = Table::new(["segment", "customers", "monetary"]);
                for segment in &r.segments {
                    table.row(vec![
                        segment.segment.clone(),
                        segment.customers.to_string(),
                        money(segment.monetary_minor, &r.currency),
                    ]);
                }
                table
            });
        }
    }
    Ok(())
}

/// Follows a computation until it is no longer running, with a progress bar on stderr for
/// people (none with `-o json`, where stdout is for the result alone).
async fn follow(
    client: &mut pb::rfm_client::RfmClient<ecrm_client::Authorized>,
    mut job: RfmJob,
    output: Output,
) -> Result<RfmJob, CliError> {
    let bar = if output.json() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(u64::from(job.steps_total.max(1)))
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} RFM {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while job.state == i32::from(RfmJobState::Running) {
        bar.set_length(u64::from(job.steps_total.max(1)));
        bar.set_position(u64::from(job.steps_done));
        if job.customers > 0 {
            bar.set_message(format!("({} customers)", job.customers));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        job = client
            .get_rfm_job(pb::GetRfmJobRequest {
                job_id: job.job_id.clone(),
            })
            .await
            .doing("follow the RFM computation")?
            .job
            .unwrap_or_default();
    }
    bar.set_position(u64::from(job.steps_done));
    let state = RfmJobState::try_from(job.state)
        .map(|s| label(s.as_str_name(), "RFM_JOB_STATE_"))
        .unwrap_or_default();
    bar.finish_with_message(format!("{state}: {} customers scored", job.customers));
    Ok(job)
}

/// Minor units as a major amount: 4990 EUR -> "49.90 EUR" (two decimals, as most currencies).
fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", minor / 100, minor % 100)
        .trim_end()
        .to_owned()
}
