//! The `customers`, `orders` and `daily_visits` tables, and the subject-wide moves (merge,
//! erasure) over every table of the projection.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Date, Nullable, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::{attributes, facts};
use crate::schema::segmentation::{
    customers, daily_visits, erasures, orders, profiling_objections,
};

/// Those of `subjects` erased here at their request.
pub fn list_erased(conn: &mut PgConnection, subjects: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    erasures::table
        .filter(erasures::subject_id.eq_any(subjects))
        .select(erasures::subject_id)
        .distinct()
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = customers, check_for_backend(diesel::pg::Pg))]
pub struct CustomerRow {
    pub subject_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub restricted: bool,
    pub first_purchase_at: Option<DateTime<Utc>>,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub order_count: i32,
    pub return_count: i32,
    pub monetary_minor: i64,
    pub unvalued_count: i32,
    pub visit_days: i32,
    pub last_visit_at: Option<DateTime<Utc>>,
    pub last_interaction_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
pub struct OrderRow {
    pub interaction_id: Uuid,
    pub subject_id: Uuid,
    pub kind: String,
    pub order_id: String,
    pub occurred_at: DateTime<Utc>,
    pub amount_minor: i64,
    pub currency: String,
    pub reporting_minor: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = daily_visits, check_for_backend(diesel::pg::Pg))]
pub struct VisitRow {
    pub subject_id: Uuid,
    pub day: NaiveDate,
    pub views: i32,
}

/// Adds the customer, created at `at`, unless known; returns whether it was new.
pub fn insert_customer(
    conn: &mut PgConnection,
    subject: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::insert_into(customers::table)
        .values((
            customers::subject_id.eq(subject),
            customers::created_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

pub fn find_customer(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Option<CustomerRow>> {
    customers::table
        .find(subject)
        .select(CustomerRow::as_select())
        .first(conn)
        .optional()
}

/// Records an order or a return unless recorded already; returns whether it was new.
pub fn insert_order(conn: &mut PgConnection, row: &OrderRow) -> QueryResult<bool> {
    diesel::insert_into(orders::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

/// Adds a new order (or, `returned`, a return) to its customer's aggregates.
pub fn add_to_aggregates(
    conn: &mut PgConnection,
    row: &OrderRow,
    returned: bool,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE customers SET \
           order_count = order_count + CASE WHEN $2 THEN 0 ELSE 1 END, \
           return_count = return_count + CASE WHEN $2 THEN 1 ELSE 0 END, \
           first_purchase_at = CASE WHEN $2 THEN first_purchase_at \
                                    ELSE LEAST(first_purchase_at, $3) END, \
           last_purchase_at = CASE WHEN $2 THEN last_purchase_at \
                                   ELSE GREATEST(last_purchase_at, $3) END, \
           monetary_minor = monetary_minor \
             + CASE WHEN $2 THEN -1 ELSE 1 END * COALESCE($4, 0), \
           unvalued_count = unvalued_count + CASE WHEN $4 IS NULL THEN 1 ELSE 0 END, \
           last_interaction_at = GREATEST(last_interaction_at, $3), \
           updated_at = now() \
         WHERE subject_id = $1",
    )
    .bind::<SqlUuid, _>(row.subject_id)
    .bind::<Bool, _>(returned)
    .bind::<Timestamptz, _>(row.occurred_at)
    .bind::<Nullable<BigInt>, _>(row.reporting_minor)
    .execute(conn)
    .map(drop)
}

/// Counts a page or product view at `at`: a visit the first time on its day.
pub fn add_view(conn: &mut PgConnection, subject: Uuid, at: DateTime<Utc>) -> QueryResult<()> {
    diesel::sql_query(
        "WITH day AS ( \
           INSERT INTO daily_visits (subject_id, day, views) VALUES ($1, $2, 1) \
           ON CONFLICT (subject_id, day) DO UPDATE SET views = daily_visits.views + 1 \
           RETURNING (xmax = 0) AS first) \
         UPDATE customers SET \
           visit_days = visit_days + CASE WHEN (SELECT first FROM day) THEN 1 ELSE 0 END, \
           last_visit_at = GREATEST(last_visit_at, $3), \
           last_interaction_at = GREATEST(last_interaction_at, $3), \
           updated_at = now() \
         WHERE subject_id = $1",
    )
    .bind::<SqlUuid, _>(subject)
    .bind::<Date, _>(at.date_naive())
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .map(drop)
}

/// Any other interaction: only its date counts.
pub fn touch_interaction(
    conn: &mut PgConnection,
    subject: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE customers SET last_interaction_at = GREATEST(last_interaction_at, $2), \
           updated_at = now() WHERE subject_id = $1",
    )
    .bind::<SqlUuid, _>(subject)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .map(drop)
}

/// Records that the subject objected to profiling, by the ledger entry `entry` at `at`.
pub fn upsert_objection(
    conn: &mut PgConnection,
    subject: Uuid,
    at: DateTime<Utc>,
    entry: Uuid,
) -> QueryResult<()> {
    diesel::insert_into(profiling_objections::table)
        .values((
            profiling_objections::subject_id.eq(subject),
            profiling_objections::objected_at.eq(at),
            profiling_objections::entry_id.eq(entry),
        ))
        .on_conflict(profiling_objections::subject_id)
        .do_update()
        .set((
            profiling_objections::objected_at.eq(at),
            profiling_objections::entry_id.eq(entry),
        ))
        .execute(conn)
        .map(drop)
}

/// Forgets the subject's objection to profiling; returns whether there was one.
pub fn delete_objection(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(profiling_objections::table.find(subject)).execute(conn)
}

/// When the subject objected to profiling, if it did.
pub fn find_objection(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Option<DateTime<Utc>>> {
    profiling_objections::table
        .find(subject)
        .select(profiling_objections::objected_at)
        .first(conn)
        .optional()
}

/// Locks the customers' rows, in subject order, for a change that reads and writes what is
/// derived from them.
pub fn lock_customers(conn: &mut PgConnection, subjects: &[Uuid]) -> QueryResult<()> {
    customers::table
        .filter(customers::subject_id.eq_any(subjects))
        .order(customers::subject_id)
        .select(customers::subject_id)
        .for_update()
        .load::<Uuid>(conn)
        .map(drop)
}

pub fn update_restricted(
    conn: &mut PgConnection,
    subject: Uuid,
    restricted: bool,
) -> QueryResult<usize> {
    diesel::update(customers::table.find(subject))
        .set((
            customers::restricted.eq(restricted),
            customers::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
}

/// Folds `merged` into `into`: its orders and visits move over, the aggregates are computed
/// again from them, and the survivor is restricted if either was. `merged` is gone after.
pub fn merge(conn: &mut PgConnection, into: Uuid, merged: Uuid) -> QueryResult<()> {
    let Some(gone) = find_customer(conn, merged)? else {
        return Ok(());
    };
    insert_customer(conn, into, gone.created_at)?;
    diesel::update(orders::table.filter(orders::subject_id.eq(merged)))
        .set(orders::subject_id.eq(into))
        .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO daily_visits (subject_id, day, views) \
           SELECT $1, day, views FROM daily_visits WHERE subject_id = $2 \
         ON CONFLICT (subject_id, day) DO UPDATE SET views = daily_visits.views + excluded.views",
    )
    .bind::<SqlUuid, _>(into)
    .bind::<SqlUuid, _>(merged)
    .execute(conn)?;
    diesel::delete(daily_visits::table.filter(daily_visits::subject_id.eq(merged)))
        .execute(conn)?;
    facts::merge(conn, into, merged)?;
    attributes::merge(conn, into, merged)?;
    diesel::sql_query(
        "UPDATE customers c SET \
           created_at = LEAST(c.created_at, $3), \
           restricted = c.restricted OR $4, \
           last_interaction_at = GREATEST(c.last_interaction_at, $5) \
         WHERE c.subject_id = $1",
    )
    .bind::<SqlUuid, _>(into)
    .bind::<SqlUuid, _>(merged)
    .bind::<Timestamptz, _>(gone.created_at)
    .bind::<Bool, _>(gone.restricted)
    .bind::<Nullable<Timestamptz>, _>(gone.last_interaction_at)
    .execute(conn)?;
    diesel::delete(customers::table.find(merged)).execute(conn)?;
    refresh(conn, into)
}

/// Computes a customer's order and visit aggregates again from its orders and visits.
pub fn refresh(conn: &mut PgConnection, subject: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE customers c SET \
           order_count = o.orders, return_count = o.returns, \
           first_purchase_at = o.first_at, last_purchase_at = o.last_at, \
           monetary_minor = o.money, unvalued_count = o.unvalued, \
           visit_days = v.days, last_visit_at = GREATEST(c.last_visit_at, v.last_day), \
           last_interaction_at = GREATEST(c.last_interaction_at, o.last_any), \
           updated_at = now() \
         FROM (SELECT count(*) FILTER (WHERE kind = 'order')::int AS orders, \
                      count(*) FILTER (WHERE kind = 'return')::int AS returns, \
                      min(occurred_at) FILTER (WHERE kind = 'order') AS first_at, \
                      max(occurred_at) FILTER (WHERE kind = 'order') AS last_at, \
                      max(occurred_at) AS last_any, \
                      COALESCE(sum(CASE WHEN kind = 'order' THEN reporting_minor \
                                        ELSE -reporting_minor END), 0)::bigint AS money, \
                      count(*) FILTER (WHERE reporting_minor IS NULL)::int AS unvalued \
               FROM orders WHERE subject_id = $1) o, \
              (SELECT count(*)::int AS days, max(day)::timestamptz AS last_day \
               FROM daily_visits WHERE subject_id = $1) v \
         WHERE c.subject_id = $1",
    )
    .bind::<SqlUuid, _>(subject)
    .execute(conn)
    .map(drop)
}

pub fn list_orders(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<OrderRow>> {
    orders::table
        .filter(orders::subject_id.eq(subject))
        .order((orders::occurred_at, orders::interaction_id))
        .select(OrderRow::as_select())
        .load(conn)
}

pub fn list_visits(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<VisitRow>> {
    daily_visits::table
        .filter(daily_visits::subject_id.eq(subject))
        .order(daily_visits::day)
        .select(VisitRow::as_select())
        .load(conn)
}

/// What erasing a subject deleted, table by table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deleted {
    pub customers: usize,
    pub orders: usize,
    pub visits: usize,
    pub attributes: usize,
    pub facts: facts::Deleted,
}

/// Deletes every row about the subject in the projection.
pub fn delete_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Deleted> {
    Ok(Deleted {
        customers: diesel::delete(customers::table.find(subject)).execute(conn)?,
        orders: diesel::delete(orders::table.filter(orders::subject_id.eq(subject)))
            .execute(conn)?,
        visits: diesel::delete(daily_visits::table.filter(daily_visits::subject_id.eq(subject)))
            .execute(conn)?,
        attributes: attributes::delete_subject(conn, subject)?,
        facts: facts::delete_subject(conn, subject)?,
    })
}
