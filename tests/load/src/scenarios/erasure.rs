//! A data subject's erasure, end to end, as a compliance officer runs it: submitted, verified,
//! approved, carried out at every service holding personal data, completed. A subject with
//! 10,000 interactions against one with a single record.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use diesel::prelude::*;
use ecrm_client::Client;
use ecrm_client::proto::consent::v1 as pb;
use ecrm_client::proto::profiles::v1 as profiles;
use ecrm_platform::DatabaseUrl;

use super::{Context, new_customer, subject};
use crate::driver::Measured;
use crate::report::{Comparison, Figure, Goal};

/// Interactions of the large subject.
const INTERACTIONS: usize = 10_000;
/// Erasures of each kind; the median is compared.
const RUNS: usize = 7;
/// How long one erasure may take before the run fails.
const STUCK_AFTER: Duration = Duration::from_secs(120);

pub async fn run(context: &Context) -> anyhow::Result<Vec<Comparison>> {
    let shop = Client::connect(context.suite.endpoints(), context.credentials.clone())?;
    let officer = context.suite.admin()?;
    let url = context.database()?;
    let mut large = Measured::empty()?;
    let mut small = Measured::empty()?;
    for run in 0..RUNS {
        // Alternated, so that neither kind has the warmer database.
        for (interactions, measured) in [(INTERACTIONS, &mut large), (0, &mut small)] {
            let subject_id = customer_with(&shop, run, interactions).await?;
            // The recording is set-up: the erasure starts on a quiet suite.
            projected(&url, &subject_id, interactions).await?;
            let took = erase(&officer, &subject_id, interactions).await?;
            measured.ops += 1;
            measured.elapsed += took;
            measured.record(took)?;
        }
    }
    Ok(vec![
        Comparison::new(
            "erasure, 10,000 interactions",
            Figure::new("10,000 interactions", &large),
            Figure::new("1 record", &small),
            Goal::TimeRatio {
                at_most: 2.0,
                under_ms: 2000.0,
            },
        )
        .with_note(format!(
            "median of {RUNS} erasures each, from submission to completion (verified and \
             approved by an operator, carried out at profiles, consent, segmentation and \
             outbound, follow-up exports checked), each started once segmentation has \
             projected the subject's interactions; the baseline is the same request for a \
             subject holding only a profile"
        )),
    ])
}

/// A new customer with `interactions` page views.
async fn customer_with(shop: &Client, run: usize, interactions: usize) -> anyhow::Result<String> {
    let subject_id = shop
        .profiles()?
        .upsert_profile(new_customer(
            &format!("erase-{interactions}-{run}-"),
            run as u64,
        ))
        .await?
        .into_inner()
        .profile
        .ok_or_else(|| anyhow!("no profile"))?
        .subject_id;
    if interactions > 0 {
        let batches: Vec<profiles::RecordInteractionsRequest> = (0..interactions)
            .collect::<Vec<_>>()
            .chunks(1000)
            .map(|chunk| profiles::RecordInteractionsRequest {
                interactions: chunk.iter().map(|n| page_view(*n, &subject_id)).collect(),
            })
            .collect();
        let recorded = shop
            .interactions()?
            .record_interactions(futures::stream::iter(batches))
            .await?
            .into_inner()
            .recorded;
        ensure!(recorded as usize == interactions, "{recorded} recorded");
    }
    Ok(subject_id)
}

/// Waits until segmentation's projection holds the subject and its `views` page views.
async fn projected(url: &DatabaseUrl, subject_id: &str, views: usize) -> anyhow::Result<()> {
    #[derive(QueryableByName)]
    struct Projected {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        customers: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        views: i64,
    }
    let (url, subject) = (url.clone(), uuid::Uuid::parse_str(subject_id)?);
    let views = i64::try_from(views)?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = PgConnection::establish(url.expose())?;
        let started = Instant::now();
        loop {
            let now: Projected = diesel::sql_query(
                "SELECT (SELECT count(*) FROM segmentation.customers WHERE subject_id = $1) \
                          AS customers, \
                        (SELECT coalesce(sum(views), 0)::bigint FROM segmentation.daily_visits \
                          WHERE subject_id = $1) AS views",
            )
            .bind::<diesel::sql_types::Uuid, _>(subject)
            .get_result(&mut conn)?;
            if now.customers == 1 && now.views == views {
                return Ok(());
            }
            ensure!(
                started.elapsed() < STUCK_AFTER,
                "segmentation has not projected the subject after {STUCK_AFTER:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await?
}

fn page_view(n: usize, subject_id: &str) -> profiles::Interaction {
    profiles::Interaction {
        event_id: format!("view-{subject_id}-{n}"),
        subject: subject(subject_id),
        channel: profiles::Channel::Web.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 3600,
            nanos: 0,
        }),
        details: Some(profiles::interaction::Details::PageView(
            profiles::PageView {
                url: format!("https://shop.example/p/{n}"),
                ..Default::default()
            },
        )),
    }
}

/// Runs one erasure request to completion; returns how long it took, after checking that
/// the certificate counts the subject's interactions.
async fn erase(
    officer: &Client,
    subject_id: &str,
    interactions: usize,
) -> anyhow::Result<Duration> {
    let mut requests = officer.requests()?;
    let started = Instant::now();
    let id = requests
        .submit_request(pb::SubmitRequestRequest {
            subject: subject(subject_id),
            r#type: pb::RequestType::Erasure.into(),
            channel: pb::RequestChannel::Web.into(),
            received_at: None,
            corrections: vec![],
        })
        .await
        .context("SubmitRequest")?
        .into_inner()
        .request
        .ok_or_else(|| anyhow!("no request"))?
        .request_id;
    requests
        .verify_requester(pb::VerifyRequesterRequest {
            request_id: id.clone(),
            reason: "identity checked in the load run".to_owned(),
        })
        .await
        .context("VerifyRequester")?;
    requests
        .approve_request(pb::ApproveRequestRequest {
            request_id: id.clone(),
        })
        .await
        .context("ApproveRequest")?;
    loop {
        let request = requests
            .get_request(pb::GetRequestRequest {
                request_id: id.clone(),
            })
            .await?
            .into_inner()
            .request
            .ok_or_else(|| anyhow!("no request"))?;
        if request.status() == pb::RequestStatus::Completed {
            break;
        }
        if started.elapsed() > STUCK_AFTER {
            bail!("erasure not completed after {STUCK_AFTER:?}: {request:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let certificate = requests
        .get_erasure_certificate(pb::GetErasureCertificateRequest { request_id: id })
        .await?
        .into_inner()
        .certificate_json;
    let erased = erased_interactions(&certificate)?;
    ensure!(
        erased as usize == interactions,
        "the certificate counts {erased} interactions erased, not {interactions}"
    );
    Ok(took)
}

/// The interactions the certificate's receipts say were erased.
fn erased_interactions(certificate: &str) -> anyhow::Result<u64> {
    let certificate: serde_json::Value = serde_json::from_str(certificate)?;
    let receipts = certificate["receipts"]
        .as_array()
        .ok_or_else(|| anyhow!("a certificate without receipts"))?;
    Ok(receipts
        .iter()
        .flat_map(|r| {
            r["receipt"]["erased"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|e| e["category"] == "interactions")
        .filter_map(|e| e["count"].as_u64())
        .sum())
}
