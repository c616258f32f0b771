//! The KPIs as SQL aggregates over the projection. Every statement joins `customers` to leave
//! restricted customers out.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// The period `[start, end)`, the previous one `[previous_start, start)`, and the days that
/// start in the period, `[first_day, end_day)`.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub previous_start: DateTime<Utc>,
    pub first_day: NaiveDate,
    pub end_day: NaiveDate,
}

/// Makes the rest of the caller's transaction read one snapshot, and only read.
pub fn set_snapshot(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(conn)
        .map(drop)
}

#[derive(Debug, Clone, Default, QueryableByName)]
pub struct CustomerCounts {
    #[diesel(sql_type = BigInt)]
    pub active: i64,
    #[diesel(sql_type = BigInt)]
    pub new_customers: i64,
    #[diesel(sql_type = BigInt)]
    pub previous_active: i64,
    #[diesel(sql_type = BigInt)]
    pub retained: i64,
    #[diesel(sql_type = BigInt)]
    pub repeat_customers: i64,
    #[diesel(sql_type = BigInt)]
    pub visitors: i64,
    #[diesel(sql_type = BigInt)]
    pub purchasers: i64,
}

/// Customers active now and before, new ones, repeat buyers, visitors and purchasers.
pub fn customer_counts(conn: &mut PgConnection, period: &Period) -> QueryResult<CustomerCounts> {
    diesel::sql_query(
        "WITH live AS (SELECT subject_id, first_purchase_at FROM customers WHERE NOT restricted), \
         buying AS ( \
           SELECT o.subject_id, count(*) AS orders \
           FROM orders o JOIN live USING (subject_id) \
           WHERE o.kind = 'order' AND o.occurred_at >= $1 AND o.occurred_at < $2 \
           GROUP BY o.subject_id), \
         before AS ( \
           SELECT DISTINCT o.subject_id \
           FROM orders o JOIN live USING (subject_id) \
           WHERE o.kind = 'order' AND o.occurred_at >= $3 AND o.occurred_at < $1), \
         visiting AS ( \
           SELECT DISTINCT v.subject_id \
           FROM daily_visits v JOIN live USING (subject_id) \
           WHERE v.day >= $4 AND v.day < $5) \
         SELECT (SELECT count(*) FROM buying) AS active, \
                (SELECT count(*) FROM live \
                 WHERE first_purchase_at >= $1 AND first_purchase_at < $2) AS new_customers, \
                (SELECT count(*) FROM before) AS previous_active, \
                (SELECT count(*) FROM before JOIN buying USING (subject_id)) AS retained, \
                (SELECT count(*) FROM buying WHERE orders >= 2) AS repeat_customers, \
                (SELECT count(*) FROM visiting) AS visitors, \
                (SELECT count(*) FROM visiting JOIN buying USING (subject_id)) AS purchasers",
    )
    .bind::<Timestamptz, _>(period.start)
    .bind::<Timestamptz, _>(period.end)
    .bind::<Timestamptz, _>(period.previous_start)
    .bind::<Date, _>(period.first_day)
    .bind::<Date, _>(period.end_day)
    .get_result(conn)
}

#[derive(Debug, Clone, Default, QueryableByName)]
pub struct OrderTotals {
    #[diesel(sql_type = BigInt)]
    pub orders: i64,
    #[diesel(sql_type = BigInt)]
    pub valued_orders: i64,
    #[diesel(sql_type = BigInt)]
    pub order_value_minor: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub average_order_value_minor: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub returns: i64,
    #[diesel(sql_type = BigInt)]
    pub refunds_minor: i64,
}

/// Orders and returns in the period, their values and the average valued order.
pub fn order_totals(conn: &mut PgConnection, period: &Period) -> QueryResult<OrderTotals> {
    diesel::sql_query(
        "SELECT count(*) FILTER (WHERE o.kind = 'order') AS orders, \
                count(o.reporting_minor) FILTER (WHERE o.kind = 'order') AS valued_orders, \
                COALESCE(sum(o.reporting_minor) FILTER (WHERE o.kind = 'order'), 0)::bigint \
                  AS order_value_minor, \
                round(avg(o.reporting_minor) FILTER (WHERE o.kind = 'order'))::bigint \
                  AS average_order_value_minor, \
                count(*) FILTER (WHERE o.kind = 'return') AS returns, \
                COALESCE(sum(o.reporting_minor) FILTER (WHERE o.kind = 'return'), 0)::bigint \
                  AS refunds_minor \
         FROM orders o JOIN customers c ON c.subject_id = o.subject_id AND NOT c.restricted \
         WHERE o.occurred_at >= $1 AND o.occurred_at < $2",
    )
    .bind::<Timestamptz, _>(period.start)
    .bind::<Timestamptz, _>(period.end)
    .get_result(conn)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct SegmentRevenueRow {
    /// `None` for customers the job did not score (or no job at all).
    #[diesel(sql_type = Nullable<Text>)]
    pub segment: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub customers: i64,
    #[diesel(sql_type = BigInt)]
    pub revenue_minor: i64,
}

/// Valued orders less valued refunds in the period, per segment of `job` (none: all unscored).
pub fn revenue_by_segment(
    conn: &mut PgConnection,
    period: &Period,
    job: Option<Uuid>,
) -> QueryResult<Vec<SegmentRevenueRow>> {
    diesel::sql_query(
        "SELECT s.segment, count(DISTINCT o.subject_id) AS customers, \
                COALESCE(sum(CASE WHEN o.kind = 'order' THEN o.reporting_minor \
                                  ELSE -o.reporting_minor END), 0)::bigint AS revenue_minor \
         FROM orders o JOIN customers c ON c.subject_id = o.subject_id AND NOT c.restricted \
         LEFT JOIN rfm_scores s ON s.job_id = $3 AND s.subject_id = o.subject_id \
         WHERE o.occurred_at >= $1 AND o.occurred_at < $2 \
         GROUP BY s.segment",
    )
    .bind::<Timestamptz, _>(period.start)
    .bind::<Timestamptz, _>(period.end)
    .bind::<Nullable<SqlUuid>, _>(job)
    .load(conn)
}

#[derive(Debug, Clone, Default, QueryableByName)]
pub struct SurveyCounts {
    #[diesel(sql_type = BigInt)]
    pub csat_answers: i64,
    #[diesel(sql_type = BigInt)]
    pub satisfied: i64,
    #[diesel(sql_type = BigInt)]
    pub nps_answers: i64,
    #[diesel(sql_type = BigInt)]
    pub promoters: i64,
    #[diesel(sql_type = BigInt)]
    pub detractors: i64,
}

/// Satisfaction and NPS answers in the period, by band.
pub fn survey_counts(conn: &mut PgConnection, period: &Period) -> QueryResult<SurveyCounts> {
    diesel::sql_query(
        "SELECT count(a.satisfaction) AS csat_answers, \
                count(*) FILTER (WHERE a.satisfaction >= 4) AS satisfied, \
                count(a.nps) AS nps_answers, \
                count(*) FILTER (WHERE a.nps >= 9) AS promoters, \
                count(*) FILTER (WHERE a.nps <= 6) AS detractors \
         FROM survey_answers a \
         JOIN customers c ON c.subject_id = a.subject_id AND NOT c.restricted \
         WHERE a.occurred_at >= $1 AND a.occurred_at < $2",
    )
    .bind::<Timestamptz, _>(period.start)
    .bind::<Timestamptz, _>(period.end)
    .get_result(conn)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct ProductBoughtRow {
    #[diesel(sql_type = Text)]
    pub product_id: String,
    #[diesel(sql_type = Text)]
    pub category: String,
    #[diesel(sql_type = BigInt)]
    pub units: i64,
    #[diesel(sql_type = BigInt)]
    pub buyers: i64,
    #[diesel(sql_type = BigInt)]
    pub units_returned: i64,
}

/// The `top` products by units ordered in the period.
pub fn top_bought(
    conn: &mut PgConnection,
    period: &Period,
    top: i64,
) -> QueryResult<Vec<ProductBoughtRow>> {
    diesel::sql_query(
        "SELECT * FROM ( \
           SELECT l.product_id, COALESCE(max(NULLIF(l.category, '')), '') AS category, \
                  COALESCE(sum(l.quantity) FILTER (WHERE l.kind = 'order'), 0)::bigint AS units, \
                  count(DISTINCT l.subject_id) FILTER (WHERE l.kind = 'order') AS buyers, \
                  COALESCE(sum(l.quantity) FILTER (WHERE l.kind = 'return'), 0)::bigint \
                    AS units_returned \
           FROM order_lines l \
           JOIN customers c ON c.subject_id = l.subject_id AND NOT c.restricted \
           WHERE l.occurred_at >= $1 AND l.occurred_at < $2 \
           GROUP BY l.product_id) p \
         WHERE units > 0 \
         ORDER BY units DESC, buyers DESC, product_id \
         LIMIT $3",
    )
    .bind::<Timestamptz, _>(period.start)
    .bind::<Timestamptz, _>(period.end)
    .bind::<BigInt, _>(top)
    .load(conn)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct ProductViewedRow {
    #[diesel(sql_type = Text)]
    pub product_id: String,
    #[diesel(sql_type = BigInt)]
    pub views: i64,
    #[diesel(sql_type = BigInt)]
    pub viewers: i64,
    #[diesel(sql_type = BigInt)]
    pub units: i64,
}

/// The `top` products by views in the period among those whose units ordered in the period
/// are at most `percent` % of their views.
pub fn viewed_not_bought(
    conn: &mut PgConnection,
    period: &Period,
    percent: i64,
    top: i64,
) -> QueryResult<Vec<ProductViewedRow>> {
    diesel::sql_query(
        "WITH viewed AS ( \
           SELECT v.product_id, sum(v.views)::bigint AS views, \
                  count(DISTINCT v.subject_id) AS viewers \
           FROM product_views v \
           JOIN customers c ON c.subject_id = v.subject_id AND NOT c.restricted \
           WHERE v.day >= $3 AND v.day < $4 \
           GROUP BY v.product_id), \
         bought AS ( \
           SELECT l.product_id, sum(l.quantity)::bigint AS units \
           FROM order_lines l \
           JOIN customers c ON c.subject_id = l.subject_id AND NOT c.restricted \
           WHERE l.kind = 'order' AND l.occurred_at >= $1 AND l.occurred_at < $2 \
           GROUP BY l.product_id) \
         SELECT v.product_id, v.views, v.viewers, COALESCE(b.units, 0) AS units \
         FROM viewed v LEFT JOIN bought b USING (product_id) \
         WHERE COALESCE(b.units, 0) * 100 <= v.views * $5 \
         ORDER BY v.views DESC, v.viewers DESC, v.product_id \
         LIMIT $6",
    )
    .bind::<Timestamptz, _>(period.start)
    .bind::<Timestamptz, _>(period.end)
    .bind::<Date, _>(period.first_day)
    .bind::<Date, _>(period.end_day)
    .bind::<BigInt, _>(percent)
    .bind::<BigInt, _>(top)
    .load(conn)
}
