//! `ecrm dsr`: data subject requests, from submission to the signed export or certificate.

use std::path::PathBuf;

use chrono::{NaiveDate, Utc};
use ecrm_client::proto::common::v1::PageRequest;
use ecrm_client::proto::consent::v1::{self as pb, DataSubjectRequest, RequestStatus, RequestType};
use serde_json::json;

use super::common::{SubjectArg, all_pages, label, parse_date, start_of};
use super::documents;
use crate::failure::{CliError, Doing};
use crate::output::{Output, Table, when};
use crate::session::Session;

/// Data subject requests (GDPR Art. 15 to 22): submit, verify the requester, approve or
/// reject, extend the deadline, and hand over the signed export or erasure certificate.
#[derive(Debug, clap::Subcommand)]
pub enum DsrCommand {
    Submit(SubmitArgs),
    List(ListArgs),
    Show(IdArg),
    Verify(VerifyArgs),
    Approve(IdArg),
    Reject(ReasonArgs),
    Extend(ExtendArgs),
    Export(ExportArgs),
    Certificate(CertificateArgs),
}

/// Record a request received from a data subject.
///
/// The deadline runs from receipt (one month, Art. 12(3)); give `--received-at` for a request
/// that arrived earlier (a letter opened today). A verification code is emailed to the
/// subject's address on file when outbound is configured.
///
/// Examples:
///
///   ecrm dsr submit --email ada@example.com --type erasure --channel email
///
///   ecrm dsr submit --subject 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10 --type access --channel post --received-at 2026-11-02
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SubmitArgs {
    #[command(flatten)]
    subject: SubjectArg,
    #[arg(long = "type", value_enum)]
    kind: Kind,
    #[arg(long, value_enum, default_value_t = Channel::Web)]
    channel: Channel,
    /// When the request was received (YYYY-MM-DD); today when unset.
    #[arg(long, value_parser = parse_date)]
    received_at: Option<NaiveDate>,
}

/// List requests, most urgent first, with their due dates and the days left.
///
/// Examples:
///
///   ecrm dsr list
///
///   ecrm dsr list --status in-progress --status awaiting-approval
///
///   ecrm dsr list --due-before 2026-12-15 --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ListArgs {
    /// Only these statuses (repeatable); open requests by default.
    #[arg(long, value_enum)]
    status: Vec<Status>,
    /// Every status, closed ones included.
    #[arg(long, conflicts_with = "status")]
    all: bool,
    /// Only these types (repeatable).
    #[arg(long = "type", value_enum)]
    kind: Vec<Kind>,
    /// Only requests due on or before this day (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    due_before: Option<NaiveDate>,
    /// At most this many.
    #[arg(long, default_value_t = 200)]
    limit: usize,
}

/// One request, by id.
///
/// Examples:
///
///   ecrm dsr show 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10
///
///   ecrm dsr approve 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct IdArg {
    /// The request's id.
    request_id: String,
}

/// Verify the requester: with the code they received, or by your own check with a reason.
///
/// Examples:
///
///   ecrm dsr verify 0190c3a1-... --code 418207
///
///   ecrm dsr verify 0190c3a1-... --reason "called back on the phone number on file"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    request_id: String,
    /// The 6-digit code the requester received.
    #[arg(long, conflicts_with = "reason", required_unless_present = "reason")]
    code: Option<String>,
    /// Why you are satisfied the requester is the subject.
    #[arg(long)]
    reason: Option<String>,
}

/// Reject a request, with the reason told to the requester (Art. 12(4)).
///
/// Examples:
///
///   ecrm dsr reject 0190c3a1-... --reason "manifestly unfounded: third identical request this month"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ReasonArgs {
    request_id: String,
    #[arg(long)]
    reason: String,
}

/// Extend the deadline once, by one or two months, with a reason (Art. 12(3)).
///
/// Examples:
///
///   ecrm dsr extend 0190c3a1-... --months 2 --reason "complex: data in six systems"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ExtendArgs {
    request_id: String,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2))]
    months: u32,
    #[arg(long)]
    reason: String,
}

/// Download the signed export bundle of a completed access or portability request, and check
/// its signature and every part's digest before keeping it.
///
/// Examples:
///
///   ecrm dsr export 0190c3a1-... --out ada-export.zip
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ExportArgs {
    request_id: String,
    /// Where to write the zip.
    #[arg(long)]
    out: PathBuf,
    /// The consent service's signing key (hex) to check against, from a source you trust;
    /// unset, the key named in the bundle is used and printed.
    #[arg(long)]
    public_key: Option<String>,
}

/// Download the signed certificate of a completed erasure, and check its signature.
///
/// Writes the certificate, its signature and public key as one JSON document.
///
/// Examples:
///
///   ecrm dsr certificate 0190c3a1-... --out ada-erasure.json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct CertificateArgs {
    request_id: String,
    #[arg(long)]
    out: PathBuf,
    /// The consent service's signing key (hex) to check against.
    #[arg(long)]
    public_key: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Access,
    Portability,
    Erasure,
    Rectification,
    Restriction,
    LiftRestriction,
    Objection,
}

impl From<Kind> for RequestType {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Access => RequestType::Access,
            Kind::Portability => RequestType::Portability,
            Kind::Erasure => RequestType::Erasure,
            Kind::Rectification => RequestType::Rectification,
            Kind::Restriction => RequestType::Restriction,
            Kind::LiftRestriction => RequestType::LiftRestriction,
            Kind::Objection => RequestType::Objection,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Status {
    AwaitingVerification,
    AwaitingApproval,
    InProgress,
    Completed,
    Rejected,
}

impl From<Status> for RequestStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::AwaitingVerification => RequestStatus::AwaitingVerification,
            Status::AwaitingApproval => RequestStatus::AwaitingApproval,
            Status::InProgress => RequestStatus::InProgress,
            Status::Completed => RequestStatus::Completed,
            Status::Rejected => RequestStatus::Rejected,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Channel {
    Web,
    Email,
    Phone,
    Post,
    InPerson,
    Partner,
}

impl From<Channel> for pb::RequestChannel {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Web => pb::RequestChannel::Web,
            Channel::Email => pb::RequestChannel::Email,
            Channel::Phone => pb::RequestChannel::Phone,
            Channel::Post => pb::RequestChannel::Post,
            Channel::InPerson => pb::RequestChannel::InPerson,
            Channel::Partner => pb::RequestChannel::Partner,
        }
    }
}

pub async fn run(command: DsrCommand, session: &Session, output: Output) -> Result<(), CliError> {
    let mut requests = session.client.requests()?;
    match command {
        DsrCommand::Submit(args) => {
            let request = requests
                .submit_request(pb::SubmitRequestRequest {
                    subject: Some(args.subject.to_ref()),
                    r#type: RequestType::from(args.kind).into(),
                    channel: pb::RequestChannel::from(args.channel).into(),
                    received_at: args.received_at.map(start_of),
                    corrections: Vec::new(),
                })
                .await
                .doing("submit the request")?;
            output.show(&request, |r| record(r.request.as_ref()));
        }
        DsrCommand::List(args) => list(&mut requests, args, output).await?,
        DsrCommand::Show(args) => {
            let request = requests
                .get_request(pb::GetRequestRequest {
                    request_id: args.request_id,
                })
                .await
                .doing("read the request")?;
            output.show(&request, |r| record(r.request.as_ref()));
            if !output.json()
                && let Some(request) = &request.request
            {
                details(request);
            }
        }
        DsrCommand::Verify(args) => {
            let request = match (args.code, args.reason) {
                (Some(code), _) => {
                    requests
                        .confirm_requester(pb::ConfirmRequesterRequest {
                            request_id: args.request_id,
                            code,
                        })
                        .await
                        .doing("confirm the requester's code")?
                        .request
                }
                (None, reason) => {
                    requests
                        .verify_requester(pb::VerifyRequesterRequest {
                            request_id: args.request_id,
                            reason: reason.unwrap_or_default(),
                        })
                        .await
                        .doing("verify the requester")?
                        .request
                }
            };
            let response = pb::GetRequestResponse { request };
            output.show(&response, |r| record(r.request.as_ref()));
        }
        DsrCommand::Approve(args) => {
            let approved = requests
                .approve_request(pb::ApproveRequestRequest {
                    request_id: args.request_id,
                })
                .await
                .doing("approve the request")?;
            output.show(&approved, |r| record(r.request.as_ref()));
        }
        DsrCommand::Reject(args) => {
            let rejected = requests
                .reject_request(pb::RejectRequestRequest {
                    request_id: args.request_id,
                    reason: args.reason,
                })
                .await
                .doing("reject the request")?;
            output.show(&rejected, |r| record(r.request.as_ref()));
        }
        DsrCommand::Extend(args) => {
            let extended = requests
                .extend_deadline(pb::ExtendDeadlineRequest {
                    request_id: args.request_id,
                    months: args.months,
                    reason: args.reason,
                })
                .await
                .doing("extend the deadline")?;
            output.show(&extended, |r| record(r.request.as_ref()));
        }
        DsrCommand::Export(args) => {
            let checked = documents::download_export(
                &mut requests,
                &args.request_id,
                &args.out,
                args.public_key.as_deref(),
                output,
            )
            .await?;
            output.either(
                json!({
                    "file": args.out,
                    "bytes": checked.bytes,
                    "parts": checked.parts,
                    "publicKey": checked.public_key,
                    "signatureValid": true,
                }),
                format!(
                    "wrote {} ({} bytes): signature valid (key {}), parts: {}",
                    args.out.display(),
                    checked.bytes,
                    checked.public_key,
                    checked.parts.join(", ")
                ),
            );
        }
        DsrCommand::Certificate(args) => {
            let certificate = requests
                .get_erasure_certificate(pb::GetErasureCertificateRequest {
                    request_id: args.request_id,
                })
                .await
                .doing("read the erasure certificate")?;
            let services =
                documents::save_certificate(&certificate, &args.out, args.public_key.as_deref())?;
            output.either(
                json!({
                    "file": args.out,
                    "services": services,
                    "publicKey": certificate.public_key,
                    "signatureValid": true,
                }),
                format!(
                    "wrote {}: signature valid (key {}), erased at: {}",
                    args.out.display(),
                    certificate.public_key,
                    services.join(", ")
                ),
            );
        }
    }
    Ok(())
}

async fn list(
    requests: &mut pb::data_subject_requests_client::DataSubjectRequestsClient<
        ecrm_client::Authorized,
    >,
    args: ListArgs,
    output: Output,
) -> Result<(), CliError> {
    let statuses: Vec<i32> = if args.all {
        Vec::new()
    } else if args.status.is_empty() {
        [
            RequestStatus::AwaitingVerification,
            RequestStatus::AwaitingApproval,
            RequestStatus::InProgress,
        ]
        .map(i32::from)
        .to_vec()
    } else {
        args.status
            .iter()
            .map(|s| RequestStatus::from(*s).into())
            .collect()
    };
    let types: Vec<i32> = args
        .kind
        .iter()
        .map(|k| RequestType::from(*k).into())
        .collect();
    let due = args.due_before.map(|day| pb::Date {
        year: chrono::Datelike::year(&day),
        month: i32::try_from(chrono::Datelike::month(&day)).unwrap_or(1),
        day: i32::try_from(chrono::Datelike::day(&day)).unwrap_or(1),
    });
    let found = all_pages(args.limit, |page_token| {
        let mut client = requests.clone();
        let request = pb::ListRequestsRequest {
            statuses: statuses.clone(),
            types: types.clone(),
            due_on_or_before: due,
            page: Some(PageRequest {
                page_size: 200,
                page_token,
            }),
        };
        async move {
            let page = client.list_requests(request).await.doing("list requests")?;
            let next = page.page.map(|p| p.next_page_token).unwrap_or_default();
            Ok((page.requests, next))
        }
    })
    .await?;
    let response = pb::ListRequestsResponse {
        requests: found,
        page: None,
    };
    output.show(&response, |response| {
        let mut table = Table::new(["id", "type", "status", "received", "due", "days left"])
            .when_empty("no requests");
        for request in &response.requests {
            table.row(vec![
                request.request_id.clone(),
                type_label(request.r#type),
                status_label(request.status),
                when(request.received_at.as_ref()),
                due_text(request.due_on.as_ref()),
                days_left_text(request),
            ]);
        }
        table
    });
    Ok(())
}

fn type_label(kind: i32) -> String {
    RequestType::try_from(kind)
        .map(|k| label(k.as_str_name(), "REQUEST_TYPE_"))
        .unwrap_or_default()
}

fn status_label(status: i32) -> String {
    RequestStatus::try_from(status)
        .map(|s| label(s.as_str_name(), "REQUEST_STATUS_"))
        .unwrap_or_default()
}

fn due_date(due: Option<&pb::Date>) -> Option<NaiveDate> {
    let due = due?;
    NaiveDate::from_ymd_opt(
        due.year,
        u32::try_from(due.month).ok()?,
        u32::try_from(due.day).ok()?,
    )
}

fn due_text(due: Option<&pb::Date>) -> String {
    due_date(due).map(|d| d.to_string()).unwrap_or_default()
}

/// Days until the due date for an open request: "12", "due today", "3 overdue"; empty for a
/// closed one, or one whose deadline is paused awaiting verification.
fn days_left_text(request: &DataSubjectRequest) -> String {
    let open = matches!(
        RequestStatus::try_from(request.status),
        Ok(RequestStatus::AwaitingApproval | RequestStatus::InProgress)
    );
    if RequestStatus::try_from(request.status) == Ok(RequestStatus::AwaitingVerification) {
        return "paused".to_owned();
    }
    match due_date(request.due_on.as_ref()) {
        Some(due) if open => match (due - Utc::now().date_naive()).num_days() {
            0 => "due today".to_owned(),
            days if days < 0 => format!("{} overdue", -days),
            days => days.to_string(),
        },
        _ => String::new(),
    }
}

fn record(request: Option<&DataSubjectRequest>) -> Table {
    let Some(request) = request else {
        return Table::record(&[]);
    };
    let mut fields = vec![
        ("id", request.request_id.clone()),
        ("subject", request.subject_id.clone()),
        ("type", type_label(request.r#type)),
        ("status", status_label(request.status)),
        ("received", when(request.received_at.as_ref())),
        ("due", due_text(request.due_on.as_ref())),
        ("days left", days_left_text(request)),
    ];
    if request.extension_months > 0 {
        fields.push((
            "extended",
            format!(
                "{} month(s): {}",
                request.extension_months, request.extension_reason
            ),
        ));
    }
    if !request.rejection_reason.is_empty() {
        fields.push(("rejected", request.rejection_reason.clone()));
    }
    if !request.verification_error.is_empty() {
        fields.push(("verification", request.verification_error.clone()));
    } else if request.verification_sent_at.is_some() {
        fields.push(("code sent", when(request.verification_sent_at.as_ref())));
    }
    Table::record(&fields)
}

/// The tasks and history of one request, below its record.
fn details(request: &DataSubjectRequest) {
    if !request.tasks.is_empty() {
        say!("");
        let mut tasks = Table::new(["service", "action", "state", "attempts", "last error"]);
        for task in &request.tasks {
            let state = if task.done {
                "done"
            } else if task.failed {
                "failed"
            } else {
                "pending"
            };
            tasks.row(vec![
                task.service.clone(),
                task.action.clone(),
                state.to_owned(),
                task.attempts.to_string(),
                task.last_error.clone(),
            ]);
        }
        tasks.print();
    }
    if !request.history.is_empty() {
        say!("");
        let mut history = Table::new(["at", "by", "from", "to", "note"]);
        for event in &request.history {
            history.row(vec![
                when(event.at.as_ref()),
                event.principal.clone(),
                status_label(event.from_status),
                status_label(event.to_status),
                event.note.clone(),
            ]);
        }
        history.print();
    }
}
