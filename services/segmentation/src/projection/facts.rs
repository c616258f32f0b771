//! The `order_lines`, `product_views` and `survey_answers` tables: the products and survey
//! scores of interactions, for KPIs.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Date, Text, Uuid as SqlUuid};
use uuid::Uuid;

use crate::schema::segmentation::{order_lines, product_views, survey_answers};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_lines, check_for_backend(diesel::pg::Pg))]
pub struct OrderLineRow {
    pub interaction_id: Uuid,
    pub line: i32,
    pub subject_id: Uuid,
    pub kind: String,
    pub product_id: String,
    pub category: String,
    pub quantity: i32,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = product_views, check_for_backend(diesel::pg::Pg))]
pub struct ProductViewRow {
    pub subject_id: Uuid,
    pub product_id: String,
    pub day: NaiveDate,
    pub views: i32,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = survey_answers, check_for_backend(diesel::pg::Pg))]
pub struct SurveyAnswerRow {
    pub interaction_id: Uuid,
    pub subject_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub satisfaction: Option<i16>,
    pub nps: Option<i16>,
}

/// Records the lines of an order or a return unless recorded already.
pub fn insert_order_lines(conn: &mut PgConnection, rows: &[OrderLineRow]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    diesel::insert_into(order_lines::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
}

/// Counts a view of `product` on `day`.
pub fn add_product_view(
    conn: &mut PgConnection,
    subject: Uuid,
    product: &str,
    day: NaiveDate,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO product_views (subject_id, product_id, day, views) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (subject_id, product_id, day) \
         DO UPDATE SET views = product_views.views + 1",
    )
    .bind::<SqlUuid, _>(subject)
    .bind::<Text, _>(product)
    .bind::<Date, _>(day)
    .execute(conn)
    .map(drop)
}

/// Records a survey answer's scores unless recorded already.
pub fn insert_survey_answer(conn: &mut PgConnection, row: &SurveyAnswerRow) -> QueryResult<()> {
    diesel::insert_into(survey_answers::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(drop)
}

/// Moves `merged`'s lines, views and answers to `into`, views of the same product and day
/// added up.
pub fn merge(conn: &mut PgConnection, into: Uuid, merged: Uuid) -> QueryResult<()> {
    diesel::update(order_lines::table.filter(order_lines::subject_id.eq(merged)))
        .set(order_lines::subject_id.eq(into))
        .execute(conn)?;
    diesel::update(survey_answers::table.filter(survey_answers::subject_id.eq(merged)))
        .set(survey_answers::subject_id.eq(into))
        .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO product_views (subject_id, product_id, day, views) \
           SELECT $1, product_id, day, views FROM product_views WHERE subject_id = $2 \
         ON CONFLICT (subject_id, product_id, day) \
         DO UPDATE SET views = product_views.views + excluded.views",
    )
    .bind::<SqlUuid, _>(into)
    .bind::<SqlUuid, _>(merged)
    .execute(conn)?;
    diesel::delete(product_views::table.filter(product_views::subject_id.eq(merged)))
        .execute(conn)
        .map(drop)
}

pub fn list_order_lines(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<OrderLineRow>> {
    order_lines::table
        .filter(order_lines::subject_id.eq(subject))
        .order((
            order_lines::occurred_at,
            order_lines::interaction_id,
            order_lines::line,
        ))
        .select(OrderLineRow::as_select())
        .load(conn)
}

pub fn list_product_views(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<ProductViewRow>> {
    product_views::table
        .filter(product_views::subject_id.eq(subject))
        .order((product_views::day, product_views::product_id))
        .select(ProductViewRow::as_select())
        .load(conn)
}

pub fn list_survey_answers(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<SurveyAnswerRow>> {
    survey_answers::table
        .filter(survey_answers::subject_id.eq(subject))
        .order((survey_answers::occurred_at, survey_answers::interaction_id))
        .select(SurveyAnswerRow::as_select())
        .load(conn)
}

/// What erasing a subject deleted here.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deleted {
    pub order_lines: usize,
    pub product_views: usize,
    pub survey_answers: usize,
}

pub fn delete_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Deleted> {
    Ok(Deleted {
        order_lines: diesel::delete(order_lines::table.filter(order_lines::subject_id.eq(subject)))
            .execute(conn)?,
        product_views: diesel::delete(
            product_views::table.filter(product_views::subject_id.eq(subject)),
        )
        .execute(conn)?,
        survey_answers: diesel::delete(
            survey_answers::table.filter(survey_answers::subject_id.eq(subject)),
        )
        .execute(conn)?,
    })
}
