//! Profiles' hot paths: reading a profile, and ingesting interactions.

use std::sync::Arc;

use anyhow::{Context as _, anyhow, ensure};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Integer, Text, Timestamptz, Uuid as SqlUuid};
use ecrm_client::for_purpose;
use ecrm_client::proto::common::v1 as common;
use ecrm_client::proto::profiles::v1 as pb;
use ecrm_platform::DatabaseUrl;

use super::{Context, create_customers, subject};
use crate::driver::{drive, drive_sql};
use crate::pgbench::{self, Workload};
use crate::report::{Comparison, Figure, Goal};

/// Customers `GetProfile` reads in turn.
const READ_CUSTOMERS: usize = 1000;
/// Customers the interactions are about.
const INGEST_CUSTOMERS: usize = 1000;
/// Interactions in each `RecordInteractions` call, and rows in each INSERT.
const BATCH: usize = 1000;
/// Messages each `RecordInteractions` stream carries the batch in.
const MESSAGES: usize = 5;

pub async fn get(context: &Context) -> anyhow::Result<Vec<Comparison>> {
    let subjects = Arc::new(create_customers(context, "reader", READ_CUSTOMERS).await?);
    let clients = context.clients("profiles", "profiles.read").await?;
    for client in &clients {
        read(client, &subjects[0]).await?;
    }
    let read_subjects = subjects.clone();
    let ecrm = drive(context.load, move |c, n| {
        let client = clients[c].clone();
        let subjects = read_subjects.clone();
        async move {
            read(&client, &subjects[n as usize % subjects.len()]).await?;
            Ok(1)
        }
    })
    .await?;

    let url = context.database()?;
    pgbench::init(&url).await?;
    number_subjects(&url, &subjects).await?;
    let select = pgbench::run(&url, context.load, Workload::SelectOnly).await?;
    let script = get_profile_sql(subjects.len());
    let same_sql = pgbench::run(&url, context.load, Workload::Script(&script)).await?;
    let ecrm = Figure::new("GetProfile", &ecrm);
    Ok(vec![
        Comparison::new(
            "GetProfile",
            ecrm.clone(),
            Figure::new("pgbench -S", &select),
            Goal::ThroughputRatio { at_least: 0.50 },
        )
        .with_note(
            "`GetProfile` is a transaction of 7 statements (the profile, its key, \
             identifiers, attributes, merges, and the access-log row every read of personal \
             data writes) plus decryption; `pgbench -S` is one indexed SELECT",
        ),
        Comparison::new(
            "GetProfile's own SQL",
            ecrm,
            Figure::new("pgbench, same statements", &same_sql),
            Goal::ThroughputRatio { at_least: 0.50 },
        )
        .with_note(
            "pgbench running the statements `GetProfile` runs, prepared, at the same \
             concurrency: the service's own overhead (gRPC, auth, decryption, pool)",
        ),
    ])
}

async fn read(client: &ecrm_client::Client, subject_id: &str) -> anyhow::Result<()> {
    let profile = client
        .profiles()?
        .get_profile(for_purpose(
            pb::GetProfileRequest {
                subject: subject(subject_id),
            },
            "customer_service",
        ))
        .await?
        .into_inner();
    ensure!(profile.profile.is_some(), "GetProfile answered no profile");
    Ok(())
}

/// The statements `GetProfile` runs for one subject, as a pgbench script. `:n` picks one of
/// the run's customers from `load_subjects`.
fn get_profile_sql(customers: usize) -> String {
    let subject = "(SELECT s FROM load_subjects WHERE n = :n)";
    let subjects = "ARRAY(SELECT s FROM load_subjects WHERE n = :n)";
    format!(
        "\\set n random(0, {last})
BEGIN;
SELECT subject_id, created_at, updated_at, merged_into, erased_at, restricted_at FROM profiles.profiles WHERE subject_id = {subject};
INSERT INTO profiles.access_log (id, subject_id, principal, principal_kind, purpose, method, action) VALUES (gen_random_uuid(), {subject}, 'load', 'internal', 'customer_service', 'Profiles/GetProfile', 'read');
SELECT subject_id, wrapped_key FROM profiles.subject_keys WHERE subject_id = ANY({subjects});
SELECT id, subject_id, kind, partner_id, custom_type, sealed_value, verified_at, verification_method, source, added_at FROM profiles.identifiers WHERE subject_id = ANY({subjects}) ORDER BY added_at, id;
SELECT id, subject_id, name, sealed_value, source, recorded_at FROM profiles.attribute_values WHERE subject_id = ANY({subjects}) AND current;
SELECT merged_into, subject_id FROM profiles.profiles WHERE merged_into = ANY({subjects}) ORDER BY merged_at, subject_id;
END;
",
        last = customers.saturating_sub(1),
    )
}

/// A numbered list of the run's customers, for pgbench scripts to pick from.
async fn number_subjects(url: &DatabaseUrl, subjects: &[String]) -> anyhow::Result<()> {
    let url = url.clone();
    let ids: Vec<uuid::Uuid> = subjects
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = PgConnection::establish(url.expose())?;
        diesel::sql_query("CREATE TABLE load_subjects (n int PRIMARY KEY, s uuid NOT NULL)")
            .execute(&mut conn)?;
        diesel::sql_query(
            "INSERT INTO load_subjects SELECT n - 1, s FROM unnest($1::uuid[]) WITH ORDINALITY AS t(s, n)",
        )
        .bind::<Array<SqlUuid>, _>(&ids)
        .execute(&mut conn)?;
        Ok(())
    })
    .await?
}

pub async fn ingest(context: &Context) -> anyhow::Result<Vec<Comparison>> {
    let subjects = Arc::new(create_customers(context, "buyer", INGEST_CUSTOMERS).await?);
    let clients = context.clients("profiles", "events.write").await?;
    let stream_subjects = subjects.clone();
    let ecrm = drive(context.load, move |c, n| {
        let client = clients[c].clone();
        let subjects = stream_subjects.clone();
        async move {
            let first = n as usize * BATCH;
            let messages: Vec<pb::RecordInteractionsRequest> = (0..MESSAGES)
                .map(|m| pb::RecordInteractionsRequest {
                    interactions: (0..BATCH / MESSAGES)
                        .map(|i| {
                            let k = first + m * (BATCH / MESSAGES) + i;
                            order(format!("load-{k}"), &subjects[k % subjects.len()], k)
                        })
                        .collect(),
                })
                .collect();
            let recorded = client
                .interactions()?
                .record_interactions(futures::stream::iter(messages))
                .await?
                .into_inner()
                .recorded;
            ensure!(recorded == BATCH as u64, "{recorded} of {BATCH} recorded");
            Ok(recorded)
        }
    })
    .await?;

    // The followers' projection of what the service wrote counts in its own figure as far as
    // it ran meanwhile; what remains would weigh on the baselines.
    context.settled().await?;
    let url = context.database()?;
    let payload_len = sealed_payload_len(&url).await?;
    let owners: Arc<Vec<uuid::Uuid>> = Arc::new(
        subjects
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?,
    );
    // The same rows in the same transactions: an INSERT a message, each committed alone.
    let message_owners = owners.clone();
    let per_message = drive_sql(&url, context.load, move |conn, n| {
        let rows = BATCH / MESSAGES;
        let mut inserted = 0;
        for m in 0..MESSAGES {
            let first = n as usize * BATCH + m * rows;
            inserted +=
                RawOrders::new(&message_owners, "msg", first, rows, payload_len).insert(conn)?;
        }
        Ok(inserted)
    })
    .await?;
    // The service's own statements and rows, in the same transactions.
    create_feed_copy(&url).await?;
    let statement_owners = owners.clone();
    let statements = drive_sql(&url, context.load, move |conn, n| {
        let rows = BATCH / MESSAGES;
        let mut inserted = 0;
        for m in 0..MESSAGES {
            let first = n as usize * BATCH + m * rows;
            inserted += RawOrders::new(&statement_owners, "sql", first, rows, payload_len)
                .record_as_the_service(conn)?;
        }
        Ok(inserted)
    })
    .await?;
    let whole = drive_sql(&url, context.load, move |conn, n| {
        RawOrders::new(&owners, "all", n as usize * BATCH, BATCH, payload_len).insert(conn)
    })
    .await?;
    let ecrm = Figure::new("RecordInteractions", &ecrm);
    let service_does = "the service also resolves each customer, seals each payload, and \
                        writes a change-feed row per interaction and an access-log row per \
                        customer";
    Ok(vec![
        Comparison::new(
            "ingest",
            ecrm.clone(),
            Figure::new("multi-row INSERT a message", &per_message),
            Goal::ThroughputRatio { at_least: 0.50 },
        )
        .with_note(format!(
            "interactions a second; each call a stream of {MESSAGES} messages of {rows} \
             orders, each message stored in its own transaction (all of it or nothing of it); \
             the baseline: the same rows in the same transactions, one multi-row INSERT of \
             {rows} rows of the same shape and payload size into the same table for each \
             message; {service_does}",
            rows = BATCH / MESSAGES
        )),
        Comparison::new(
            "ingest's own SQL",
            ecrm.clone(),
            Figure::new("the same statements", &statements),
            Goal::ThroughputRatio { at_least: 0.50 },
        )
        .with_note(format!(
            "the statements the service runs for each message, in the same transactions at the \
             same concurrency: its reads and locks of the customers and their keys, the \
             INSERT of the {rows} orders, of a feed row each (into a copy of the feed table \
             that no follower reads) and of an access-log row per customer; the service's own \
             overhead (gRPC, auth, resolving, sealing, pool) and its followers' projection",
            rows = BATCH / MESSAGES
        )),
        Comparison::new(
            "ingest, against 1,000-row INSERTs",
            ecrm,
            Figure::new("multi-row INSERT of 1,000", &whole),
            Goal::ThroughputRatio { at_least: 0.50 },
        )
        .with_note(format!(
            "the same streams against one INSERT of all {BATCH} rows of a call in one \
             transaction; the gap between the two baselines is what committing each message \
             costs"
        )),
    ])
}

fn order(event_id: String, subject_id: &str, n: usize) -> pb::Interaction {
    let amount = 1_000 + i64::try_from(n % 50_000).unwrap_or(0);
    let money = |amount_minor| common::Money {
        amount_minor,
        currency: "EUR".to_owned(),
    };
    pb::Interaction {
        event_id,
        subject: subject(subject_id),
        channel: pb::Channel::Web.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 3600,
            nanos: 0,
        }),
        details: Some(pb::interaction::Details::Order(pb::Order {
            order_id: format!("order-{n}"),
            total: Some(money(amount)),
            line_items: vec![pb::LineItem {
                product_id: format!("sku-{}", n % 997),
                category: "shoes".to_owned(),
                quantity: 1,
                unit_price: Some(money(amount)),
            }],
        })),
    }
}

/// The length of the sealed payloads the service stored, for rows of the same size.
async fn sealed_payload_len(url: &DatabaseUrl) -> anyhow::Result<usize> {
    #[derive(QueryableByName)]
    struct Len {
        #[diesel(sql_type = diesel::sql_types::Nullable<Integer>)]
        len: Option<i32>,
    }
    let url = url.clone();
    let len = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<i32>> {
        let mut conn = PgConnection::establish(url.expose())?;
        Ok(diesel::sql_query(
            "SELECT max(octet_length(sealed_payload)) AS len FROM profiles.interactions",
        )
        .get_result::<Len>(&mut conn)?
        .len)
    })
    .await??
    .ok_or_else(|| anyhow!("no interaction was stored"))?;
    Ok(usize::try_from(len)?)
}

/// `rows` orders from row `first` on, as the raw baselines write them; event ids start with
/// `prefix`, unique to each baseline.
struct RawOrders {
    ids: Vec<uuid::Uuid>,
    events: Vec<String>,
    subjects: Vec<uuid::Uuid>,
    orders: Vec<String>,
    amounts: Vec<i64>,
    payloads: Vec<Vec<u8>>,
}

impl RawOrders {
    fn new(
        owners: &[uuid::Uuid],
        prefix: &str,
        first: usize,
        rows: usize,
        payload_len: usize,
    ) -> Self {
        let range = first..first + rows;
        Self {
            ids: range.clone().map(|_| uuid::Uuid::now_v7()).collect(),
            events: range.clone().map(|k| format!("raw-{prefix}-{k}")).collect(),
            subjects: range.clone().map(|k| owners[k % owners.len()]).collect(),
            orders: range.clone().map(|k| format!("order-{k}")).collect(),
            amounts: range
                .clone()
                .map(|k| 1_000 + i64::try_from(k % 50_000).unwrap_or(0))
                .collect(),
            payloads: range.map(|_| vec![7_u8; payload_len]).collect(),
        }
    }

    /// One multi-row INSERT (UNNEST of arrays) into the service's table, as the service words it.
    fn insert(&self, conn: &mut PgConnection) -> anyhow::Result<u64> {
        let occurred = chrono::Utc::now() - chrono::Duration::hours(1);
        let expires = occurred + chrono::Duration::days(3650);
        let rows = diesel::sql_query(
            "INSERT INTO profiles.interactions \
               (id, event_id, subject_id, kind, channel, occurred_at, order_id, amount_minor, \
                currency, sealed_payload, expires_at) \
             SELECT id, event_id, subject_id, 'order', 'web', $6, order_id, amount, 'EUR', \
                    payload, $7 \
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::bigint[], \
               $8::bytea[]) AS t(id, event_id, subject_id, order_id, amount, payload) \
             ON CONFLICT DO NOTHING",
        )
        .bind::<Array<SqlUuid>, _>(&self.ids)
        .bind::<Array<Text>, _>(&self.events)
        .bind::<Array<SqlUuid>, _>(&self.subjects)
        .bind::<Array<Text>, _>(&self.orders)
        .bind::<Array<BigInt>, _>(&self.amounts)
        .bind::<Timestamptz, _>(occurred)
        .bind::<Timestamptz, _>(expires)
        .bind::<Array<Bytea>, _>(&self.payloads)
        .execute(conn)
        .context("the raw INSERT failed")?;
        Ok(rows as u64)
    }

    /// What the service runs for the batch, in one transaction: it reads the customers (and
    /// the profiles merged ones point to) and locks them against a merge or an erasure, reads
    /// their keys, inserts the interactions, a feed row each (into [`FEED_COPY`], which no
    /// follower reads) and an access-log row per customer.
    fn record_as_the_service(&self, conn: &mut PgConnection) -> anyhow::Result<u64> {
        let mut customers = self.subjects.clone();
        customers.sort_unstable();
        customers.dedup();
        conn.transaction(|conn| {
            for read in [
                "SELECT * FROM profiles.profiles WHERE subject_id = ANY($1)",
                "SELECT * FROM profiles.profiles WHERE subject_id = ANY($1) \
                 ORDER BY subject_id FOR KEY SHARE",
                "SELECT subject_id, wrapped_key FROM profiles.subject_keys \
                 WHERE subject_id = ANY($1)",
            ] {
                diesel::sql_query(read)
                    .bind::<Array<SqlUuid>, _>(&customers)
                    .execute(conn)?;
            }
            let inserted = self.insert(conn)?;
            diesel::sql_query(format!(
                "INSERT INTO {FEED_COPY} (subject_id, kind, interaction_id) \
                 SELECT subject_id, 'interaction_recorded', interaction_id \
                 FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY \
                   AS t(subject_id, interaction_id, n) \
                 ORDER BY n"
            ))
            .bind::<Array<SqlUuid>, _>(&self.subjects)
            .bind::<Array<SqlUuid>, _>(&self.ids)
            .execute(conn)?;
            let log_ids: Vec<uuid::Uuid> = customers.iter().map(|_| uuid::Uuid::now_v7()).collect();
            diesel::sql_query(
                "INSERT INTO profiles.access_log \
                   (id, subject_id, principal, principal_kind, partner_id, on_behalf_of, \
                    purpose, method, action) \
                 SELECT id, subject_id, 'ecrm-load', 'internal', NULL, NULL, 'not_declared', \
                        '/ecrm.profiles.v1.Interactions/RecordInteractions', 'write' \
                 FROM unnest($1::uuid[], $2::uuid[]) AS t(id, subject_id)",
            )
            .bind::<Array<SqlUuid>, _>(&log_ids)
            .bind::<Array<SqlUuid>, _>(&customers)
            .execute(conn)?;
            Ok(inserted)
        })
    }
}

/// A copy of profiles' change feed (same columns, indexes and defaults) that no follower reads,
/// for the baseline that writes the service's rows without handing consent and segmentation
/// work the service's side did not have.
const FEED_COPY: &str = "ecrm_load.changes";

async fn create_feed_copy(url: &DatabaseUrl) -> anyhow::Result<()> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = PgConnection::establish(url.expose())?;
        diesel::sql_query("CREATE SCHEMA IF NOT EXISTS ecrm_load").execute(&mut conn)?;
        diesel::sql_query(format!(
            "CREATE TABLE IF NOT EXISTS {FEED_COPY} (LIKE profiles.changes INCLUDING ALL)"
        ))
        .execute(&mut conn)?;
        Ok(())
    })
    .await?
}
