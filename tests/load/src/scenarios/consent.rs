//! Consent's hot path: which of 10,000 subjects may be contacted for a purpose, as a campaign
//! asks before it sends.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use diesel::prelude::*;
use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use ecrm_client::proto::common::v1 as common;
use ecrm_client::proto::consent::v1 as pb;

use super::{Context, record_decisions};
use crate::driver::{Load, drive, drive_sql};
use crate::report::{Comparison, Figure, Goal};

/// Subjects in one `CheckConsent` call: the most the contract allows.
const SUBJECTS: usize = 10_000;
const PURPOSE: &str = "load_newsletter";

pub async fn check(context: &Context) -> anyhow::Result<Vec<Comparison>> {
    let client =
        ecrm_client::Client::connect(context.suite.endpoints(), context.credentials.clone())?;
    client
        .purposes()?
        .define_purpose(pb::DefinePurposeRequest {
            purpose: Some(pb::Purpose {
                key: PURPOSE.to_owned(),
                description: "The weekly newsletter".to_owned(),
                lawful_basis: common::LawfulBasis::Consent.into(),
                channels: vec![pb::Channel::Email.into()],
                ..Default::default()
            }),
        })
        .await
        .context("cannot define the purpose (consent.write)")?;
    let notice = client
        .purposes()?
        .publish_notice(pb::PublishNoticeRequest {
            purpose_key: PURPOSE.to_owned(),
            text: "Our weekly newsletter.".to_owned(),
        })
        .await?
        .into_inner()
        .version;

    // A fifth of the subjects decided, half of those later withdrew.
    let subjects: Arc<Vec<String>> = Arc::new(
        (0..SUBJECTS)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect(),
    );
    let decisions = subjects
        .iter()
        .step_by(5)
        .enumerate()
        .map(|(i, subject)| {
            let decision = if i % 2 == 0 {
                pb::Decision::Granted
            } else {
                pb::Decision::Withdrawn
            };
            (subject.clone(), decision)
        })
        .collect();
    record_decisions(&client, PURPOSE, &notice, decisions).await?;
    let url = context.database()?;
    // As autovacuum soon does for a running service: statistics for the planner.
    let analyze = url.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = PgConnection::establish(analyze.expose())?;
        diesel::sql_query("ANALYZE consent.ledger").execute(&mut conn)?;
        Ok(())
    })
    .await??;

    // One call at a time: the goal is the latency of one campaign's question.
    let one_at_a_time = Load::new(1, context.load.limit);
    let clients = [client];
    let asked = subjects.clone();
    let ecrm = drive(one_at_a_time, move |c, _| {
        let client = clients[c].clone();
        let request = pb::CheckConsentRequest {
            purpose_key: PURPOSE.to_owned(),
            channel: pb::Channel::Email.into(),
            subject_ids: asked.to_vec(),
        };
        async move {
            let answered = client
                .consents()?
                .check_consent(request)
                .await?
                .into_inner()
                .decisions
                .len();
            ensure!(
                answered == SUBJECTS,
                "{answered} decisions for {SUBJECTS} subjects"
            );
            Ok(1)
        }
    })
    .await?;

    let ids: Arc<Vec<uuid::Uuid>> = Arc::new(
        subjects
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?,
    );
    let sql = drive_sql(&url, one_at_a_time, move |conn, _| {
        latest_decisions(conn, &ids)
    })
    .await?;
    Ok(vec![
        Comparison::new(
            "CheckConsent, 10,000 subjects",
            Figure::new("CheckConsent", &ecrm),
            Figure::new("latest-decision SELECT", &sql),
            Goal::Latency { under_ms: 50.0 },
        )
        .with_note(
            "one call at a time, a fifth of the subjects with decisions; the baseline is the \
             one SELECT (DISTINCT ON the subject) of each latest decision, where the service \
             also follows merges and checks restrictions and objections",
        ),
    ])
}

/// The latest decision of each subject for the purpose and channel: the ledger query at the
/// heart of `CheckConsent`.
fn latest_decisions(conn: &mut PgConnection, subjects: &[uuid::Uuid]) -> anyhow::Result<u64> {
    #[derive(QueryableByName)]
    struct Latest {
        #[diesel(sql_type = SqlUuid)]
        _subject_id: uuid::Uuid,
    }
    let rows: Vec<Latest> = diesel::sql_query(
        "SELECT DISTINCT ON (subject_id) subject_id AS _subject_id, decision, expires_at \
         FROM consent.ledger \
         WHERE purpose_key = $1 AND channel = $2 AND subject_id = ANY($3) \
         ORDER BY subject_id, sequence DESC",
    )
    .bind::<Text, _>(PURPOSE)
    .bind::<Text, _>("email")
    .bind::<Array<SqlUuid>, _>(subjects)
    .load(conn)?;
    ensure!(!rows.is_empty(), "no decision found");
    Ok(1)
}
