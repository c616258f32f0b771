//! `ecrm.consent.v1.Consents`: decode, call the domain, encode.

use std::pin::Pin;
use std::sync::Arc;

use ecrm_platform::feed::FeedCursor;
use ecrm_platform::paging::Page;
use ecrm_platform::time::{from_timestamp, to_timestamp, to_timestamp_opt};
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::consents_server::Consents as ConsentsApi;
use futures::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{Decision, Ledger, MAX_CHECK_SUBJECTS, NewDecision, Reason};
use super::store::EntryRow;
use crate::caller::Caller;
use crate::error::ConsentError;
use crate::purposes::domain::{Channel, check_key};
use crate::purposes::grpc::{channel_from_proto, channel_to_proto};

const MAX_COLLECTION_POINT_CHARS: usize = 64;
const MAX_USER_AGENT_CHARS: usize = 512;
const MAX_FORM_ID_CHARS: usize = 128;
/// Purposes one watch may name.
const MAX_WATCHED_PURPOSES: usize = 100;

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchConsentChangesResponse, Status>> + Send>>;

fn subject_id(field: &str, value: &str) -> Result<Uuid, ConsentError> {
    Uuid::parse_str(value).map_err(|_| ConsentError::invalid(field, "not a subject id (a UUID)"))
}

fn purpose_key(value: &str) -> Result<String, ConsentError> {
    check_key(value).map_err(|_| ConsentError::invalid("purpose_key", "not a purpose key"))
}

/// Optional free text: empty is absent; no control characters.
fn text(field: &str, value: &str, max: usize) -> Result<Option<String>, ConsentError> {
    let value = value.trim();
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ConsentError::invalid(
            field,
            format!("at most {max} characters, no control characters"),
        ));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

impl TryFrom<&pb::RecordConsentRequest> for NewDecision {
    type Error = ConsentError;

    fn try_from(request: &pb::RecordConsentRequest) -> Result<Self, Self::Error> {
        let decision = match pb::Decision::try_from(request.decision) {
            Ok(pb::Decision::Granted) => Decision::Granted,
            Ok(pb::Decision::Withdrawn) => Decision::Withdrawn,
            _ => {
                return Err(ConsentError::invalid(
                    "decision",
                    "DECISION_GRANTED or DECISION_WITHDRAWN",
                ));
            }
        };
        let collection_point = request.collection_point.trim();
        let valid_point = !collection_point.is_empty()
            && collection_point.len() <= MAX_COLLECTION_POINT_CHARS
            && collection_point.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            });
        if !valid_point {
            return Err(ConsentError::invalid(
                "collection_point",
                format!(
                    "1 to {MAX_COLLECTION_POINT_CHARS} of a-z, 0-9, '_', '-', '.', e.g. \"checkout\""
                ),
            ));
        }
        let evidence = request.evidence.clone().unwrap_or_default();
        let ip_hash = text("evidence.ip_hash", &evidence.ip_hash, 64)?;
        if ip_hash.as_deref().is_some_and(|h| {
            h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }) {
            return Err(ConsentError::invalid(
                "evidence.ip_hash",
                "a SHA-256 in lower-case hex (64 characters): hash the address, never send it",
            ));
        }
        let expires_at = request
            .expires_at
            .as_ref()
            .map(|t| {
                from_timestamp(t)
                    .ok_or_else(|| ConsentError::invalid("expires_at", "not a valid timestamp"))
            })
            .transpose()?;
        if let Some(at) = expires_at {
            if decision == Decision::Withdrawn {
                return Err(ConsentError::invalid("expires_at", "only a grant lapses"));
            }
            if at <= chrono::Utc::now() {
                return Err(ConsentError::invalid("expires_at", "must be in the future"));
            }
        }
        Ok(Self {
            subject_id: subject_id("subject_id", &request.subject_id)?,
            purpose_key: purpose_key(&request.purpose_key)?,
            decision,
            channel: channel_from_proto(request.channel, "channel")?,
            collection_point: collection_point.to_owned(),
            notice_version: text("notice_version", &request.notice_version, 64)?,
            ip_hash,
            user_agent: text(
                "evidence.user_agent",
                &evidence.user_agent,
                MAX_USER_AGENT_CHARS,
            )?,
            form_id: text("evidence.form_id", &evidence.form_id, MAX_FORM_ID_CHARS)?,
            expires_at,
        })
    }
}

fn decision_to_proto(stored: &str) -> pb::Decision {
    match Decision::parse(stored) {
        Some(Decision::Granted) => pb::Decision::Granted,
        Some(Decision::Withdrawn) => pb::Decision::Withdrawn,
        None => pb::Decision::Unspecified,
    }
}

fn channel_of(stored: &str) -> pb::Channel {
    Channel::parse(stored).map_or(pb::Channel::Unspecified, channel_to_proto)
}

fn entry_to_proto(row: EntryRow) -> pb::LedgerEntry {
    pb::LedgerEntry {
        entry_id: row.id.to_string(),
        subject_id: row.subject_id.to_string(),
        sequence: u64::try_from(row.sequence).unwrap_or_default(),
        decision: decision_to_proto(&row.decision).into(),
        channel: channel_of(&row.channel).into(),
        purpose_key: row.purpose_key,
        collection_point: row.collection_point,
        notice_version: row.notice_version.unwrap_or_default(),
        evidence: Some(pb::Evidence {
            ip_hash: row.ip_hash.unwrap_or_default(),
            user_agent: row.user_agent.unwrap_or_default(),
            form_id: row.form_id.unwrap_or_default(),
        }),
        expires_at: to_timestamp_opt(row.expires_at),
        recorded_by: row.recorded_by,
        recorded_by_kind: row.recorded_by_kind,
        recorded_at: Some(to_timestamp(row.recorded_at)),
        previous_hash: hex::encode(row.previous_hash),
        hash: hex::encode(row.hash),
    }
}

fn reason_to_proto(reason: Reason) -> pb::Reason {
    match reason {
        Reason::Granted => pb::Reason::Granted,
        Reason::SoftOptIn => pb::Reason::SoftOptIn,
        Reason::Contract => pb::Reason::Contract,
        Reason::OtherLawfulBasis => pb::Reason::OtherLawfulBasis,
        Reason::Withdrawn => pb::Reason::Withdrawn,
        Reason::Expired => pb::Reason::Expired,
        Reason::NeverAsked => pb::Reason::NeverAsked,
        Reason::Restricted => pb::Reason::Restricted,
        Reason::Objected => pb::Reason::Objected,
    }
}

#[derive(Debug, Clone)]
pub struct ConsentsService {
    pub ledger: Arc<Ledger>,
}

#[tonic::async_trait]
impl ConsentsApi for ConsentsService {
    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::RecordConsentResponse>, Status> {
        let caller = Caller::of(&request)?;
        let new = NewDecision::try_from(request.get_ref())?;
        let entry = self.ledger.record(caller, new).await?;
        Ok(Response::new(pb::RecordConsentResponse {
            entry: Some(entry_to_proto(entry)),
        }))
    }

    async fn get_consent_state(
        &self,
        request: Request<pb::GetConsentStateRequest>,
    ) -> Result<Response<pb::GetConsentStateResponse>, Status> {
        Caller::of(&request)?;
        let subject = subject_id("subject_id", &request.get_ref().subject_id)?;
        let states = self.ledger.state(subject).await?;
        Ok(Response::new(pb::GetConsentStateResponse {
            states: states
                .into_iter()
                .map(|state| {
                    let entry = state.entry;
                    let decision = if state.expired {
                        pb::Decision::Withdrawn
                    } else {
                        decision_to_proto(&entry.decision)
                    };
                    pb::ConsentState {
                        channel: channel_of(&entry.channel).into(),
                        purpose_key: entry.purpose_key,
                        decision: decision.into(),
                        expired: state.expired,
                        decided_at: Some(to_timestamp(entry.recorded_at)),
                        expires_at: to_timestamp_opt(entry.expires_at),
                        notice_version: entry.notice_version.unwrap_or_default(),
                        entry_id: entry.id.to_string(),
                    }
                })
                .collect(),
        }))
    }

    async fn check_consent(
        &self,
        request: Request<pb::CheckConsentRequest>,
    ) -> Result<Response<pb::CheckConsentResponse>, Status> {
        Caller::of(&request)?;
        let body = request.get_ref();
        let purpose = purpose_key(&body.purpose_key)?;
        let channel = channel_from_proto(body.channel, "channel")?;
        if body.subject_ids.is_empty() || body.subject_ids.len() > MAX_CHECK_SUBJECTS {
            return Err(ConsentError::invalid(
                "subject_ids",
                format!("1 to {MAX_CHECK_SUBJECTS} subject ids"),
            )
            .into());
        }
        let subjects = body
            .subject_ids
            .iter()
            .enumerate()
            .map(|(i, s)| subject_id(&format!("subject_ids[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        let decisions = self.ledger.check(purpose, channel, subjects).await?;
        Ok(Response::new(pb::CheckConsentResponse {
            decisions: decisions
                .into_iter()
                .map(|(subject, reason)| pb::SubjectDecision {
                    subject_id: subject.to_string(),
                    allowed: reason.allowed(),
                    reason: reason_to_proto(reason).into(),
                })
                .collect(),
        }))
    }

    async fn list_consent_history(
        &self,
        request: Request<pb::ListConsentHistoryRequest>,
    ) -> Result<Response<pb::ListConsentHistoryResponse>, Status> {
        Caller::of(&request)?;
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        let page = Page::from_request(body.page.as_ref()).map_err(ConsentError::from)?;
        let (entries, page) = self.ledger.history(subject, page).await?;
        Ok(Response::new(pb::ListConsentHistoryResponse {
            entries: entries.into_iter().map(entry_to_proto).collect(),
            page: Some(page),
        }))
    }

    async fn verify_ledger(
        &self,
        request: Request<pb::VerifyLedgerRequest>,
    ) -> Result<Response<pb::VerifyLedgerResponse>, Status> {
        Caller::of(&request)?;
        let body = request.get_ref();
        let only = if body.subject_id.is_empty() {
            None
        } else {
            Some(subject_id("subject_id", &body.subject_id)?)
        };
        let found = self.ledger.verify(only).await?;
        let mut response = pb::VerifyLedgerResponse {
            intact: found.broken.is_none(),
            entries_checked: found.entries_checked,
            checkpoints_checked: found.checkpoints_checked,
            ..Default::default()
        };
        if let Some(broken) = found.broken {
            response.first_broken_entry_id =
                broken.entry_id.map(|id| id.to_string()).unwrap_or_default();
            response.first_broken_subject_id = broken.subject_id.to_string();
            response.first_broken_sequence = u64::try_from(broken.sequence).unwrap_or_default();
            response.problem = broken.problem.to_owned();
        }
        Ok(Response::new(response))
    }

    async fn take_checkpoint(
        &self,
        request: Request<pb::TakeCheckpointRequest>,
    ) -> Result<Response<pb::TakeCheckpointResponse>, Status> {
        Caller::of(&request)?;
        let (latest, created) = self.ledger.checkpoint().await?;
        Ok(Response::new(pb::TakeCheckpointResponse {
            checkpoint_id: latest
                .as_ref()
                .map(|c| c.id.to_string())
                .unwrap_or_default(),
            taken_at: latest.as_ref().map(|c| to_timestamp(c.taken_at)),
            subjects: latest
                .as_ref()
                .and_then(|c| u64::try_from(c.subjects).ok())
                .unwrap_or_default(),
            created,
            public_key: hex::encode(self.ledger.checkpoint_public_key()),
        }))
    }

    type WatchConsentChangesStream = WatchStream;

    async fn watch_consent_changes(
        &self,
        request: Request<pb::WatchConsentChangesRequest>,
    ) -> Result<Response<Self::WatchConsentChangesStream>, Status> {
        Caller::of(&request)?;
        let body = request.get_ref();
        let cursor = FeedCursor::decode(&body.cursor)
            .ok_or_else(|| ConsentError::invalid("cursor", "not a cursor from this service"))?;
        if body.purpose_keys.len() > MAX_WATCHED_PURPOSES {
            return Err(ConsentError::invalid(
                "purpose_keys",
                format!("at most {MAX_WATCHED_PURPOSES}"),
            )
            .into());
        }
        let purposes = body
            .purpose_keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                check_key(key).map_err(|_| {
                    ConsentError::invalid(format!("purpose_keys[{i}]"), "not a purpose key")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stream = self.ledger.watch(cursor, purposes).map(|item| {
            item.map(|(cursor, entry)| pb::WatchConsentChangesResponse {
                cursor: cursor.encode(),
                entry: Some(entry_to_proto(entry)),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
