//! The worker: claims due tasks, calls each service's `PersonalData`, keeps what it answered
//! (sealed), retries failures with exponential backoff, and completes a request once every
//! task of it is done.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ecrm_auth::{TokenSource, bearer_request};
use ecrm_crypto::MasterKey;
use ecrm_platform::Db;
use ecrm_proto::ecrm::privacy::v1 as pb;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use futures::TryStreamExt as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::Instrument as _;
use uuid::Uuid;

use super::store::{self, ClaimedTask, Reported};
use crate::dsr::domain::{RequestKind, Requests, complete, open_corrections};
use crate::dsr::store::{self as request_store, RequestRow};
use crate::error::ConsentError;

/// Tasks claimed per round.
const CLAIM: i64 = 16;
/// How long a claimed task is the claimer's before another worker may take it, unless the
/// claimer extends it: a worker that died (killed, its host lost) holds its tasks this long.
const LEASE_SECONDS: i64 = 30;
/// How often a worker extends the leases of the tasks it holds: well within the lease.
const LEASE_RENEWAL: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long one call may take; its worker renews the lease meanwhile.
const TASK_TIMEOUT: Duration = Duration::from_secs(240);
/// What the request's history says when its last task is done.
const COMPLETED: &str = "carried out by every service holding personal data";

/// A service holding personal data, by name, and where it serves `PersonalData`.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub channel: Channel,
}

/// The tasks that carry out a request of `kind` at `targets`.
pub fn tasks_for(kind: RequestKind, targets: &[String]) -> Vec<(&str, &'static str)> {
    let actions: &[&'static str] = match kind {
        RequestKind::Access | RequestKind::Portability => &["export"],
        RequestKind::Erasure => &["erase", "verify_erased"],
        RequestKind::Restriction => &["restrict"],
        RequestKind::LiftRestriction => &["lift_restriction"],
        RequestKind::Rectification => &["rectify"],
        // Consent's own, carried out at approval.
        RequestKind::Objection => &[],
    };
    targets
        .iter()
        .flat_map(|target| actions.iter().map(move |action| (target.as_str(), *action)))
        .collect()
}

pub struct Orchestrator {
    db: Db,
    targets: Vec<Target>,
    tokens: Arc<dyn TokenSource>,
    master: Arc<MasterKey>,
    requests: Arc<Requests>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

/// Where a task's sealed result is bound.
fn result_context(task: &ClaimedTask) -> Vec<u8> {
    task_context(task.request_id, &task.service, &task.action)
}

/// Where the sealed result of `request`'s `action` at `service` is bound.
pub fn task_context(request: Uuid, service: &str, action: &str) -> Vec<u8> {
    format!("consent.request_task:{request}:{service}:{action}").into_bytes()
}

/// Whether the service refused the task, so retrying cannot help: it found the request
/// invalid, the subject gone, or the orchestrator not allowed. Outages and lost tokens are
/// retried.
fn is_refusal(error: &ConsentError) -> bool {
    use tonic::Code;
    matches!(
        error,
        ConsentError::Unavailable { status, .. } if matches!(
            status.code(),
            Code::InvalidArgument
                | Code::NotFound
                | Code::FailedPrecondition
                | Code::PermissionDenied
                | Code::Unimplemented
                | Code::OutOfRange
        )
    )
}

/// A failed attempt as the request shows it: what the service answered, when it answered.
/// Our services' messages name the field at fault and carry no personal data.
fn describe(error: &ConsentError) -> String {
    match error {
        ConsentError::Unavailable { status, .. } => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(0, 12)).unwrap_or(12);
    Duration::from_secs(2_u64.pow(exponent)).min(MAX_BACKOFF)
}

impl Orchestrator {
    pub fn new(
        db: Db,
        targets: Vec<Target>,
        tokens: Arc<dyn TokenSource>,
        master: Arc<MasterKey>,
        requests: Arc<Requests>,
    ) -> Self {
        Self {
            db,
            targets,
            tokens,
            master,
            requests,
        }
    }

    /// Runs the due tasks until `shutdown`: at once when an approval creates some, again at
    /// once while there were tasks to run (the next step of a request may be due), else every
    /// `interval` (retries, and tasks created by other replicas).
    pub fn spawn(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let created = self.requests.tasks_created();
        tokio::spawn(async move {
            loop {
                let woken = created.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                match self.run_due().await {
                    Ok(0) => {}
                    Ok(ran) => {
                        tracing::info!(ran, "request tasks run");
                        continue;
                    }
                    Err(error) => tracing::warn!(error = %error, "cannot run request tasks"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = &mut woken => {}
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
    }

    /// Completes requests whose tasks are all done, then claims and runs the tasks due now;
    /// returns how many it ran. One task failing does not stop the others.
    pub async fn run_due(&self) -> Result<usize, ConsentError> {
        let claimed = self
            .db
            .run(|conn| {
                for request in store::list_finished_requests(conn)? {
                    complete(conn, request, COMPLETED)?;
                }
                Ok::<_, ConsentError>(store::claim_due(conn, CLAIM, LEASE_SECONDS)?)
            })
            .await?;
        let ran = claimed.len();
        // While this round runs, its tasks stay ours: a call may take up to TASK_TIMEOUT.
        let renewal = self.renew_leases(claimed.iter().map(|task| task.claim_id).collect());
        let _stop_renewing = renewal.drop_guard();
        for task in claimed {
            let (request, service, action) =
                (task.request_id, task.service.clone(), task.action.clone());
            // A root of its own, unless the approval's trace was kept: then the task, and the
            // call to the service it runs at, are part of that trace.
            let span = tracing::info_span!(
                parent: None,
                "request_task",
                otel.name = %format!("request task {action} at {service}"),
                request.id = %request,
                service = %service,
                action = %action,
            );
            if let Some(traceparent) = &task.traceparent {
                ecrm_platform::propagation::set_parent(&span, traceparent);
            }
            if let Err(error) = self.run(task).instrument(span).await {
                tracing::warn!(request.id = %request, service = %service, action = %action, error = %error, "cannot record a request task's outcome");
            }
        }
        Ok(ran)
    }

    /// Extends the leases of `claims` every [`LEASE_RENEWAL`] until the token is cancelled.
    fn renew_leases(&self, claims: Vec<Uuid>) -> CancellationToken {
        let stop = CancellationToken::new();
        let (db, stopped) = (self.db.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stopped.cancelled() => return,
                    () = tokio::time::sleep(LEASE_RENEWAL) => {}
                }
                let claims = claims.clone();
                let renewed = db
                    .run(move |conn| {
                        Ok::<_, ConsentError>(store::extend_leases(conn, &claims, LEASE_SECONDS)?)
                    })
                    .await;
                if let Err(error) = renewed {
                    // The next renewal tries again. A lease that lapses meanwhile lets another
                    // worker take the task; this one's outcome is then not recorded (its claim
                    // is no longer the task's), and the services' answers are idempotent.
                    tracing::warn!(error = %error, "cannot extend the leases of request tasks");
                }
            }
        });
        stop
    }

    async fn run(&self, task: ClaimedTask) -> Result<(), ConsentError> {
        let request = task.request_id;
        let row = self
            .db
            .run(move |conn| {
                request_store::find(conn, request)?.ok_or(ConsentError::NotFound("request"))
            })
            .await?;
        // Under a lease renewed while the call runs, so no other worker runs the task meanwhile.
        let outcome = tokio::time::timeout(TASK_TIMEOUT, self.call(&task, &row))
            .await
            .unwrap_or_else(|_| {
                Err(ConsentError::FailedPrecondition(format!(
                    "no answer within {}s",
                    TASK_TIMEOUT.as_secs()
                )))
            });
        match outcome {
            Ok((result, reported)) => {
                let sealed = self
                    .master
                    .seal(&result_context(&task), result.to_string().as_bytes())
                    .map_err(|_| ConsentError::Corrupt)?;
                let done = task.clone();
                // The task and, when it was the last, the request, in one transaction: no
                // crash or concurrent worker leaves a request in progress with nothing to do.
                self.db
                    .run(move |conn| {
                        if store::update_done(conn, &done, &sealed, &reported)?
                            && store::all_done(conn, done.request_id)?
                        {
                            complete(conn, done.request_id, COMPLETED)?;
                        }
                        Ok::<_, ConsentError>(())
                    })
                    .await
            }
            Err(error) if is_refusal(&error) => {
                tracing::warn!(request.id = %request, service = %task.service, action = %task.action, error = %error, "request task refused; an operator carries it out");
                let message = describe(&error);
                self.db
                    .run(move |conn| {
                        Ok::<_, ConsentError>(store::update_refused(conn, &task, &message)?)
                    })
                    .await
            }
            Err(error) => {
                let next = Utc::now()
                    + chrono::Duration::from_std(backoff(task.attempts)).unwrap_or_default();
                tracing::warn!(request.id = %request, service = %task.service, action = %task.action, attempts = task.attempts, error = %error, "request task failed; will retry");
                let message = describe(&error);
                self.db
                    .run(move |conn| {
                        Ok::<_, ConsentError>(store::update_failed(conn, &task, &message, next)?)
                    })
                    .await
            }
        }
    }

    /// Calls the task's service; what it answered, as JSON, and what it reported.
    async fn call(
        &self,
        task: &ClaimedTask,
        request: &RequestRow,
    ) -> Result<(serde_json::Value, Reported), ConsentError> {
        let subject = request.subject_id;
        let target = self
            .targets
            .iter()
            .find(|t| t.name == task.service)
            .ok_or_else(|| {
                ConsentError::FailedPrecondition(format!(
                    "no PersonalData server named {:?} is configured",
                    task.service
                ))
            })?;
        let unavailable = |status: tonic::Status| ConsentError::Unavailable {
            service: "personal data",
            status,
        };
        let token = self
            .tokens
            .token(&target.name, &["privacy.execute".to_owned()])
            .await
            .map_err(unavailable)?;
        let mut client = PersonalDataClient::new(target.channel.clone());
        let (subject_id, request_id) = (subject.to_string(), task.request_id.to_string());
        match task.action.as_str() {
            "export" | "verify_erased" => {
                let records: Vec<pb::ExportResponse> = client
                    .export(
                        bearer_request(
                            &token,
                            pb::ExportRequest {
                                subject_id,
                                request_id,
                            },
                        )
                        .map_err(unavailable)?,
                    )
                    .await
                    .map_err(unavailable)?
                    .into_inner()
                    .try_collect()
                    .await
                    .map_err(unavailable)?;
                if task.action == "verify_erased" {
                    return Ok((
                        self.check_erased(task, &records).await?,
                        Reported::default(),
                    ));
                }
                let documents = records
                    .into_iter()
                    .map(|r| {
                        let document: serde_json::Value = serde_json::from_str(&r.document_json)
                            .map_err(|_| {
                                ConsentError::FailedPrecondition(format!(
                                    "{} exported a record that is not JSON ({})",
                                    task.service, r.record_id
                                ))
                            })?;
                        Ok(json!({
                            "category": r.category,
                            "record_id": r.record_id,
                            "document": document,
                        }))
                    })
                    .collect::<Result<Vec<_>, ConsentError>>()?;
                Ok((json!(documents), Reported::default()))
            }
            "erase" => {
                let receipt = client
                    .erase(
                        bearer_request(
                            &token,
                            pb::EraseRequest {
                                subject_id,
                                request_id,
                            },
                        )
                        .map_err(unavailable)?,
                    )
                    .await
                    .map_err(unavailable)?
                    .into_inner()
                    .receipt
                    .unwrap_or_default();
                Ok((
                    json!({
                        "service": receipt.service,
                        "erased": receipt.erased.iter().map(|e| json!({"category": e.category, "count": e.count})).collect::<Vec<_>>(),
                        "retained": receipt.retained.iter().map(|r| json!({
                            "category": r.category,
                            "count": r.count,
                            "legal_reason": r.legal_reason,
                            "pseudonymised": r.pseudonymised,
                        })).collect::<Vec<_>>(),
                        "notified_recipients": receipt.notified_recipients,
                    }),
                    Reported {
                        notified_recipients: receipt.notified_recipients,
                        ..Reported::default()
                    },
                ))
            }
            "restrict" | "lift_restriction" => {
                let restricted = task.action == "restrict";
                let answer = client
                    .restrict(
                        bearer_request(
                            &token,
                            pb::RestrictRequest {
                                subject_id,
                                request_id,
                                restricted,
                            },
                        )
                        .map_err(unavailable)?,
                    )
                    .await
                    .map_err(unavailable)?
                    .into_inner();
                Ok((
                    json!({
                        "restricted": answer.restricted,
                        "notified_recipients": answer.notified_recipients,
                    }),
                    Reported {
                        notified_recipients: answer.notified_recipients,
                        ..Reported::default()
                    },
                ))
            }
            "rectify" => {
                let corrections = open_corrections(&self.master, request)?
                    .into_iter()
                    .map(|c| pb::Correction {
                        field: c.field,
                        value_json: c.value_json,
                    })
                    .collect();
                let answer = client
                    .rectify(
                        bearer_request(
                            &token,
                            pb::RectifyRequest {
                                subject_id,
                                request_id,
                                corrections,
                            },
                        )
                        .map_err(unavailable)?,
                    )
                    .await
                    .map_err(unavailable)?
                    .into_inner();
                Ok((
                    json!({
                        "service": answer.service,
                        "applied": answer.applied,
                        "not_held": answer.not_held,
                        "notified_recipients": answer.notified_recipients,
                    }),
                    Reported {
                        notified_recipients: answer.notified_recipients,
                        corrected_fields: answer.applied,
                    },
                ))
            }
            other => Err(ConsentError::FailedPrecondition(format!(
                "unknown task action {other:?}"
            ))),
        }
    }

    /// After an erasure, an export must hold nothing but what the receipt says was kept.
    async fn check_erased(
        &self,
        task: &ClaimedTask,
        records: &[pb::ExportResponse],
    ) -> Result<serde_json::Value, ConsentError> {
        let erase = ClaimedTask {
            action: "erase".to_owned(),
            ..task.clone()
        };
        let (request, service) = (task.request_id, task.service.clone());
        let sealed = self
            .db
            .run(move |conn| {
                Ok::<_, ConsentError>(store::find_result(conn, request, &service, "erase")?)
            })
            .await?
            .ok_or(ConsentError::Corrupt)?;
        let receipt: serde_json::Value = serde_json::from_slice(
            &self
                .master
                .open(&result_context(&erase), &sealed)
                .map_err(|_| ConsentError::Corrupt)?,
        )
        .map_err(|_| ConsentError::Corrupt)?;
        let kept: HashSet<&str> = receipt["retained"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["category"].as_str())
            .collect();
        let remaining: Vec<&str> = records
            .iter()
            .map(|r| r.category.as_str())
            .filter(|c| !kept.contains(c))
            .collect();
        if !remaining.is_empty() {
            return Err(ConsentError::FailedPrecondition(format!(
                "data remains after the erasure: {}",
                remaining.join(", ")
            )));
        }
        let mut categories_left: Vec<&str> = records.iter().map(|r| r.category.as_str()).collect();
        categories_left.sort_unstable();
        categories_left.dedup();
        Ok(json!({
            "records_left": records.len(),
            "categories_left": categories_left,
            "all_retained_by_receipt": true,
        }))
    }
}
