//! The `rfm_jobs` and `rfm_scores` tables, and the computation's three steps as SQL.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Double, Integer, Uuid as SqlUuid};
use uuid::Uuid;

use crate::schema::segmentation::{rfm_jobs, rfm_scores};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rfm_jobs, check_for_backend(diesel::pg::Pg))]
pub struct JobRow {
    pub id: Uuid,
    pub state: String,
    pub as_of: NaiveDate,
    pub window_days: i32,
    pub bins: i32,
    pub currency: String,
    pub steps_done: i32,
    pub steps_total: i32,
    pub customers: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rfm_scores, check_for_backend(diesel::pg::Pg))]
pub struct ScoreRow {
    pub job_id: Uuid,
    pub subject_id: Uuid,
    pub recency_days: i32,
    pub frequency: i32,
    pub monetary_minor: i64,
    pub r: Option<i16>,
    pub f: Option<i16>,
    pub m: Option<i16>,
    pub segment: Option<String>,
}

pub fn insert_job(conn: &mut PgConnection, row: &JobRow) -> QueryResult<()> {
    diesel::insert_into(rfm_jobs::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find_job(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<JobRow>> {
    rfm_jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .optional()
}

/// The id of the latest job that finished, as a subquery.
#[diesel::dsl::auto_type]
pub fn current_id() -> _ {
    let done: &'static str = "done";
    rfm_jobs::table
        .filter(rfm_jobs::state.eq(done))
        .order((rfm_jobs::finished_at.desc(), rfm_jobs::id.desc()))
        .select(rfm_jobs::id)
        .limit(1_i64)
}

/// The latest job that finished.
pub fn find_current(conn: &mut PgConnection) -> QueryResult<Option<JobRow>> {
    rfm_jobs::table
        .filter(rfm_jobs::state.eq("done"))
        .order((rfm_jobs::finished_at.desc(), rfm_jobs::id.desc()))
        .select(JobRow::as_select())
        .first(conn)
        .optional()
}

/// The scoring step is done: `customers` were scored.
pub fn update_scored(conn: &mut PgConnection, id: Uuid, customers: i64) -> QueryResult<()> {
    diesel::update(rfm_jobs::table.find(id))
        .set((
            rfm_jobs::steps_done.eq(1),
            rfm_jobs::customers.eq(customers),
        ))
        .execute(conn)
        .map(drop)
}

/// Marks the job done, every step of it: its scores are the current ones from now on.
pub fn update_done(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(rfm_jobs::table.find(id))
        .set((
            rfm_jobs::state.eq("done"),
            rfm_jobs::steps_done.eq(rfm_jobs::steps_total),
            rfm_jobs::finished_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(drop)
}

/// Holds the job's lock until the transaction ends: while a transaction holds it, the job is
/// being worked on.
pub fn lock_job(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .map(drop)
}

#[derive(QueryableByName)]
struct Abandoned {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Integer)]
    steps_done: i32,
}

/// Jobs still running that no transaction works on (their process stopped), started over a
/// minute ago, with the steps they finished; each locked until this transaction ends.
pub fn list_abandoned(conn: &mut PgConnection) -> QueryResult<Vec<(Uuid, i32)>> {
    let rows: Vec<Abandoned> = diesel::sql_query(
        "SELECT id, steps_done FROM rfm_jobs \
         WHERE state = 'running' AND started_at < now() - INTERVAL '1 minute' \
           AND pg_try_advisory_xact_lock(hashtextextended(id::text, 0))",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.id, r.steps_done)).collect())
}

/// Forgets the jobs done before `current`, and their scores.
pub fn delete_older_jobs(conn: &mut PgConnection, current: Uuid) -> QueryResult<usize> {
    let finished: Option<DateTime<Utc>> = rfm_jobs::table
        .find(current)
        .select(rfm_jobs::finished_at)
        .first(conn)?;
    let Some(finished) = finished else {
        return Ok(0);
    };
    let older: Vec<Uuid> = rfm_jobs::table
        .filter(rfm_jobs::state.eq_any(["done", "failed"]))
        .filter(rfm_jobs::id.ne(current))
        .filter(rfm_jobs::finished_at.le(finished))
        .select(rfm_jobs::id)
        .load(conn)?;
    diesel::delete(rfm_scores::table.filter(rfm_scores::job_id.eq_any(&older))).execute(conn)?;
    diesel::delete(rfm_jobs::table.filter(rfm_jobs::id.eq_any(&older))).execute(conn)
}

pub fn update_failed(conn: &mut PgConnection, id: Uuid, error: &str) -> QueryResult<()> {
    diesel::update(rfm_jobs::table.find(id))
        .set((
            rfm_jobs::state.eq("failed"),
            rfm_jobs::finished_at.eq(diesel::dsl::now),
            rfm_jobs::error.eq(error),
        ))
        .execute(conn)?;
    diesel::delete(rfm_scores::table.filter(rfm_scores::job_id.eq(id)))
        .execute(conn)
        .map(drop)
}

/// `work_mem` of a computation's transaction.
const SORT_MEMORY: &str = "256MB";

/// Lets the rest of the transaction sort and hash in memory: the computation ranks every
/// scored customer three times, which at the server's default `work_mem` spills to disk.
pub fn use_sort_memory(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query(format!("SET LOCAL work_mem = '{SORT_MEMORY}'"))
        .execute(conn)
        .map(drop)
}

/// The computation, as one statement: the measures of each customer neither restricted nor
/// objecting to profiling over the orders in `[from, to)` (monetary multiplied by `factor`,
/// into the job's currency), their scores 1..=bins by rank (equal values share the lowest
/// rank of their group), and the segment `segment_case` names (an SQL CASE over `r5` and
/// `f5`, the scores on a 1-5 scale). Returns how many customers were scored.
#[expect(
    clippy::too_many_arguments,
    reason = "one statement's parameters, each named"
)]
pub fn insert_scores(
    conn: &mut PgConnection,
    job: Uuid,
    as_of: NaiveDate,
    from: NaiveDate,
    to: NaiveDate,
    factor: f64,
    bins: i32,
    segment_case: &str,
) -> QueryResult<usize> {
    diesel::sql_query(format!(
        "INSERT INTO rfm_scores (job_id, subject_id, recency_days, frequency, monetary_minor, \
                                 r, f, m, segment) \
         WITH measured AS ( \
           SELECT o.subject_id, \
                  $2 - (max(o.occurred_at) FILTER (WHERE o.kind = 'order') \
                        AT TIME ZONE 'UTC')::date AS recency_days, \
                  count(*) FILTER (WHERE o.kind = 'order')::int AS frequency, \
                  round(COALESCE(sum(CASE WHEN o.kind = 'order' THEN o.reporting_minor \
                                          ELSE -o.reporting_minor END), 0) * $5)::bigint \
                    AS monetary_minor \
           FROM orders o JOIN customers c ON c.subject_id = o.subject_id AND NOT c.restricted \
           WHERE NOT EXISTS (SELECT 1 FROM profiling_objections p \
                             WHERE p.subject_id = o.subject_id) \
             AND o.occurred_at >= $3::timestamp AT TIME ZONE 'UTC' \
             AND o.occurred_at < $4::timestamp AT TIME ZONE 'UTC' \
           GROUP BY o.subject_id \
           HAVING count(*) FILTER (WHERE o.kind = 'order') > 0), \
         scored AS ( \
           SELECT *, \
                  1 + (rank() OVER (ORDER BY recency_days DESC) - 1) * $6 / count(*) OVER () AS r, \
                  1 + (rank() OVER (ORDER BY frequency) - 1) * $6 / count(*) OVER () AS f, \
                  1 + (rank() OVER (ORDER BY monetary_minor) - 1) * $6 / count(*) OVER () AS m \
           FROM measured), \
         named AS ( \
           SELECT *, (r * 5 + $6 - 1) / $6 AS r5, (f * 5 + $6 - 1) / $6 AS f5 FROM scored) \
         SELECT $1, subject_id, recency_days, frequency, monetary_minor, r, f, m, \
                {segment_case} \
         FROM named ORDER BY subject_id"
    ))
    .bind::<SqlUuid, _>(job)
    .bind::<Date, _>(as_of)
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .bind::<Double, _>(factor)
    .bind::<Integer, _>(bins)
    .execute(conn)
}

pub fn find_score(
    conn: &mut PgConnection,
    job: Uuid,
    subject: Uuid,
) -> QueryResult<Option<ScoreRow>> {
    rfm_scores::table
        .find((job, subject))
        .select(ScoreRow::as_select())
        .first(conn)
        .optional()
}

/// A segment, its customers and their monetary total.
pub type SegmentTotal = (Option<String>, i64, Option<i64>);

/// Customers and monetary total per segment.
pub fn list_segment_totals(conn: &mut PgConnection, job: Uuid) -> QueryResult<Vec<SegmentTotal>> {
    rfm_scores::table
        .filter(rfm_scores::job_id.eq(job))
        .group_by(rfm_scores::segment)
        .select((
            rfm_scores::segment,
            diesel::dsl::count_star(),
            diesel::dsl::sql::<diesel::sql_types::Nullable<BigInt>>("sum(monetary_minor)::bigint"),
        ))
        .load(conn)
}

/// The subject's scores in every job kept (found job by job, through the primary key).
pub fn list_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<ScoreRow>> {
    rfm_scores::table
        .filter(rfm_scores::job_id.eq_any(rfm_jobs::table.select(rfm_jobs::id)))
        .filter(rfm_scores::subject_id.eq(subject))
        .select(ScoreRow::as_select())
        .load(conn)
}

pub fn delete_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(
        rfm_scores::table
            .filter(rfm_scores::job_id.eq_any(rfm_jobs::table.select(rfm_jobs::id)))
            .filter(rfm_scores::subject_id.eq(subject)),
    )
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::rfm::domain::{segment, segment_case_sql};

    /// Recency days, frequency, monetary.
    type Measures = (i32, i32, i64);

    /// Scores customers whose orders give `measures` (customer i has measures[i]), their
    /// rows inserted in `order`, on `bins` levels as of 31 October 2026; returns each
    /// customer's (r, f, m, segment).
    fn score(
        conn: &mut PgConnection,
        measures: &[Measures],
        order: &[usize],
        bins: i32,
    ) -> HashMap<usize, (i16, i16, i16, String)> {
        use crate::schema::segmentation::{customers, orders};
        diesel::delete(orders::table).execute(conn).unwrap();
        diesel::delete(customers::table).execute(conn).unwrap();
        let as_of = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
        let job = Uuid::now_v7();
        insert_job(
            conn,
            &JobRow {
                id: job,
                state: "running".to_owned(),
                as_of,
                window_days: 365,
                bins,
                currency: "EUR".to_owned(),
                steps_done: 0,
                steps_total: 2,
                customers: None,
                started_at: Utc::now(),
                finished_at: None,
                error: None,
            },
        )
        .unwrap();
        let subjects: Vec<Uuid> = (0..measures.len())
            .map(|i| Uuid::from_u128(i as u128 + 1))
            .collect();
        let noon = |days_before: i32| {
            (as_of - chrono::Days::new(u64::try_from(days_before).unwrap()))
                .and_hms_opt(12, 0, 0)
                .unwrap()
                .and_utc()
        };
        for &i in order {
            let (recency, frequency, monetary) = measures[i];
            diesel::insert_into(customers::table)
                .values((
                    customers::subject_id.eq(subjects[i]),
                    customers::created_at.eq(noon(400)),
                ))
                .execute(conn)
                .unwrap();
            // The latest order carries the whole amount; the others, a day apart, nothing.
            for j in 0..frequency {
                let amount = if j == 0 { monetary } else { 0 };
                diesel::insert_into(orders::table)
                    .values((
                        orders::interaction_id.eq(Uuid::now_v7()),
                        orders::subject_id.eq(subjects[i]),
                        orders::kind.eq("order"),
                        orders::order_id.eq(format!("{i}-{j}")),
                        orders::occurred_at.eq(noon(recency + j)),
                        orders::amount_minor.eq(amount),
                        orders::currency.eq("EUR"),
                        orders::reporting_minor.eq(Some(amount)),
                    ))
                    .execute(conn)
                    .unwrap();
            }
        }
        let from = as_of + chrono::Days::new(1) - chrono::Days::new(365);
        insert_scores(
            conn,
            job,
            as_of,
            from,
            as_of + chrono::Days::new(1),
            1.0,
            bins,
            &segment_case_sql(),
        )
        .unwrap();
        rfm_scores::table
            .filter(rfm_scores::job_id.eq(job))
            .select(ScoreRow::as_select())
            .load(conn)
            .unwrap()
            .into_iter()
            .map(|row| {
                let i = subjects.iter().position(|s| *s == row.subject_id).unwrap();
                // The measures came out as they went in.
                assert_eq!(
                    (row.recency_days, row.frequency, row.monetary_minor),
                    measures[i]
                );
                (
                    i,
                    (
                        row.r.unwrap(),
                        row.f.unwrap(),
                        row.m.unwrap(),
                        row.segment.unwrap(),
                    ),
                )
            })
            .collect()
    }

    fn cases() -> impl Strategy<Value = (Vec<Measures>, Vec<usize>, i32)> {
        prop::collection::vec((0_i32..40, 1_i32..6, 0_i64..500), 1..40).prop_flat_map(|m| {
            let order: Vec<usize> = (0..m.len()).collect();
            (Just(m), Just(order).prop_shuffle(), 2_i32..=10)
        })
    }

    #[test]
    fn scores_are_order_free_share_ties_stay_in_range_and_name_segments_as_documented() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let database = runtime.block_on(ecrm_testkit::TestDatabase::new(&[&crate::SERVICE]));
        let db = runtime.block_on(database.db(&crate::SERVICE)).unwrap();
        let config = ProptestConfig {
            cases: 32,
            ..ProptestConfig::default()
        };
        proptest!(config, |((measures, order, bins) in cases())| {
            let (measures, order) = (measures.clone(), order.clone());
            let (first, shuffled) = runtime.block_on(db.run(move |conn| {
                let natural: Vec<usize> = (0..measures.len()).collect();
                let first = score(conn, &measures, &natural, bins);
                let shuffled = score(conn, &measures, &order, bins);
                Ok::<_, ecrm_platform::DbError>(((first, measures), shuffled))
            })).unwrap();
            let (first, measures) = first;
            // The order rows are read in changes nothing.
            prop_assert_eq!(&first, &shuffled);
            let top = i16::try_from(bins).unwrap();
            for (i, (r, f, m, name)) in &first {
                prop_assert!((1..=top).contains(r) && (1..=top).contains(f) && (1..=top).contains(m));
                let reference = segment(u32::try_from(*r).unwrap(), u32::try_from(*f).unwrap(), u32::try_from(bins).unwrap());
                prop_assert_eq!(Some(name.as_str()), reference);
                for (j, (r2, f2, m2, _)) in &first {
                    let (a, b) = (measures[*i], measures[*j]);
                    // Equal values share a score; better values never score lower.
                    if a.0 == b.0 { prop_assert_eq!(r, r2); }
                    if a.0 < b.0 { prop_assert!(r >= r2); }
                    if a.1 == b.1 { prop_assert_eq!(f, f2); }
                    if a.1 > b.1 { prop_assert!(f >= f2); }
                    if a.2 == b.2 { prop_assert_eq!(m, m2); }
                    if a.2 > b.2 { prop_assert!(m >= m2); }
                }
            }
        });
    }
}
