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

/// The latest job that finished.
pub fn find_current(conn: &mut PgConnection) -> QueryResult<Option<JobRow>> {
    rfm_jobs::table
        .filter(rfm_jobs::state.eq("done"))
        .order((rfm_jobs::finished_at.desc(), rfm_jobs::id.desc()))
        .select(JobRow::as_select())
        .first(conn)
        .optional()
}

pub fn update_progress(
    conn: &mut PgConnection,
    id: Uuid,
    steps_done: i32,
    customers: Option<i64>,
) -> QueryResult<()> {
    diesel::update(rfm_jobs::table.find(id))
        .set((
            rfm_jobs::steps_done.eq(steps_done),
            rfm_jobs::customers.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<BigInt>>(
                "COALESCE(",
            )
            .bind::<diesel::sql_types::Nullable<BigInt>, _>(customers)
            .sql(", customers)")),
        ))
        .execute(conn)
        .map(drop)
}

/// Marks the job done, and forgets the scores of every job done before it.
pub fn update_done(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
    let finished: DateTime<Utc> = diesel::update(rfm_jobs::table.find(id))
        .set((
            rfm_jobs::state.eq("done"),
            rfm_jobs::finished_at.eq(diesel::dsl::now),
        ))
        .returning(rfm_jobs::finished_at.assume_not_null())
        .get_result(conn)?;
    diesel::delete(
        rfm_jobs::table
            .filter(rfm_jobs::state.eq("done"))
            .filter(rfm_jobs::id.ne(id))
            .filter(rfm_jobs::finished_at.le(finished)),
    )
    .execute(conn)
    .map(drop)
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

/// Step 1: each unrestricted customer's measures over the orders in `[from, to)`, monetary
/// multiplied by `factor` (into the job's currency); returns how many customers.
pub fn insert_measures(
    conn: &mut PgConnection,
    job: Uuid,
    as_of: NaiveDate,
    from: NaiveDate,
    to: NaiveDate,
    factor: f64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO rfm_scores (job_id, subject_id, recency_days, frequency, monetary_minor) \
         SELECT $1, o.subject_id, \
                $2 - (max(o.occurred_at) FILTER (WHERE o.kind = 'order') AT TIME ZONE 'UTC')::date, \
                count(*) FILTER (WHERE o.kind = 'order'), \
                round(COALESCE(sum(CASE WHEN o.kind = 'order' THEN o.reporting_minor \
                                        ELSE -o.reporting_minor END), 0) * $5)::bigint \
         FROM orders o JOIN customers c ON c.subject_id = o.subject_id AND NOT c.restricted \
         WHERE o.occurred_at >= $3::timestamp AT TIME ZONE 'UTC' \
           AND o.occurred_at < $4::timestamp AT TIME ZONE 'UTC' \
         GROUP BY o.subject_id \
         HAVING count(*) FILTER (WHERE o.kind = 'order') > 0",
    )
    .bind::<SqlUuid, _>(job)
    .bind::<Date, _>(as_of)
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .bind::<Double, _>(factor)
    .execute(conn)
}

/// Step 2: scores 1..=bins by rank, equal values sharing the lowest rank of their group.
pub fn update_scores(conn: &mut PgConnection, job: Uuid, bins: i32) -> QueryResult<usize> {
    diesel::sql_query(
        "WITH ranked AS ( \
           SELECT subject_id, \
                  rank() OVER (ORDER BY recency_days DESC) AS rr, \
                  rank() OVER (ORDER BY frequency) AS fr, \
                  rank() OVER (ORDER BY monetary_minor) AS mr, \
                  count(*) OVER () AS n \
           FROM rfm_scores WHERE job_id = $1) \
         UPDATE rfm_scores s SET \
           r = 1 + (ranked.rr - 1) * $2 / ranked.n, \
           f = 1 + (ranked.fr - 1) * $2 / ranked.n, \
           m = 1 + (ranked.mr - 1) * $2 / ranked.n \
         FROM ranked WHERE s.job_id = $1 AND s.subject_id = ranked.subject_id",
    )
    .bind::<SqlUuid, _>(job)
    .bind::<Integer, _>(bins)
    .execute(conn)
}

/// Step 3: the named segment, from `segment_case` (an SQL CASE over `r5` and `f5`).
pub fn update_segments(
    conn: &mut PgConnection,
    job: Uuid,
    bins: i32,
    segment_case: &str,
) -> QueryResult<usize> {
    diesel::sql_query(format!(
        "UPDATE rfm_scores t SET segment = {segment_case} \
         FROM (SELECT subject_id, (r * 5 + $2 - 1) / $2 AS r5, (f * 5 + $2 - 1) / $2 AS f5 \
               FROM rfm_scores WHERE job_id = $1) s \
         WHERE t.job_id = $1 AND t.subject_id = s.subject_id"
    ))
    .bind::<SqlUuid, _>(job)
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

pub fn list_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<ScoreRow>> {
    rfm_scores::table
        .filter(rfm_scores::subject_id.eq(subject))
        .select(ScoreRow::as_select())
        .load(conn)
}

pub fn delete_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(rfm_scores::table.filter(rfm_scores::subject_id.eq(subject))).execute(conn)
}
