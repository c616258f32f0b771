//! What several commands share: naming a subject, dates, and paging through lists.

use ecrm_client::proto::common::v1::{Identifier, IdentifierKind, SubjectRef, subject_ref};

use crate::failure::CliError;

/// A subject named on the command line: its id, or an email address, phone number or loyalty
/// number that profiles knows.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct SubjectArg {
    /// The subject's id (a UUID).
    #[arg(long)]
    pub subject: Option<String>,
    /// The subject's email address.
    #[arg(long)]
    pub email: Option<String>,
    /// The subject's phone number, in E.164 form (+33612345678).
    #[arg(long)]
    pub phone: Option<String>,
    /// The subject's loyalty number.
    #[arg(long)]
    pub loyalty_number: Option<String>,
}

impl SubjectArg {
    pub fn to_ref(&self) -> SubjectRef {
        let identifier = |kind: IdentifierKind, value: &String| {
            subject_ref::Subject::Identifier(Identifier {
                kind: kind.into(),
                value: value.clone(),
                ..Default::default()
            })
        };
        let subject = match self {
            Self {
                subject: Some(id), ..
            } => subject_ref::Subject::SubjectId(id.clone()),
            Self {
                email: Some(email), ..
            } => identifier(IdentifierKind::Email, email),
            Self {
                phone: Some(phone), ..
            } => identifier(IdentifierKind::Phone, phone),
            Self {
                loyalty_number: Some(number),
                ..
            } => identifier(IdentifierKind::LoyaltyNumber, number),
            // clap's group makes one of them required.
            _ => subject_ref::Subject::SubjectId(String::new()),
        };
        SubjectRef {
            subject: Some(subject),
        }
    }
}

/// A `YYYY-MM-DD` date on the command line.
pub fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date such as 2026-12-31"))
}

/// The start of `date` (UTC) as a protobuf timestamp.
pub fn start_of(date: chrono::NaiveDate) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: date
            .and_hms_opt(0, 0, 0)
            .map_or(0, |at| at.and_utc().timestamp()),
        nanos: 0,
    }
}

/// Reads every page of a listing: `fetch(token)` returns one page's items and the next token.
pub async fn all_pages<T, F, Fut>(limit: usize, mut fetch: F) -> Result<Vec<T>, CliError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), CliError>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = fetch(token).await?;
        items.extend(page);
        if next.is_empty() || items.len() >= limit {
            items.truncate(limit);
            return Ok(items);
        }
        token = next;
    }
}

/// A proto enum value's name for people: `REQUEST_STATUS_IN_PROGRESS` -> `in progress`.
pub fn label(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_lowercase()
        .replace('_', " ")
}
