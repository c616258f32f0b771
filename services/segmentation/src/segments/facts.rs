//! The facts a rule can read about one customer, from the projection and the latest RFM
//! computation, and their types.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::projection::store::{self as projection, CustomerRow};
use crate::rfm::store as rfm;
use crate::rules::{FieldType, Value};

/// Windows of the `orders_<N>d` and `spend_<N>d` facts, in days.
const WINDOWS: [i64; 3] = [30, 90, 365];

/// The type of each field rules may name.
pub fn field_type(field: &str) -> Option<FieldType> {
    let number = [
        "orders",
        "returns",
        "spend",
        "orders_30d",
        "orders_90d",
        "orders_365d",
        "spend_30d",
        "spend_90d",
        "spend_365d",
        "visit_days",
        "days_since_first_order",
        "days_since_last_order",
        "days_since_last_visit",
        "days_as_customer",
        "rfm.r",
        "rfm.f",
        "rfm.m",
    ];
    if number.contains(&field) {
        Some(FieldType::Number)
    } else if field == "rfm.segment" {
        Some(FieldType::Text)
    } else {
        None
    }
}

/// A customer's facts, and whether processing is restricted.
#[derive(Debug, Clone)]
pub struct CustomerFacts {
    pub restricted: bool,
    pub facts: HashMap<String, Value>,
}

#[derive(QueryableByName)]
struct Windowed {
    #[diesel(sql_type = BigInt)]
    orders_30d: i64,
    #[diesel(sql_type = BigInt)]
    orders_90d: i64,
    #[diesel(sql_type = BigInt)]
    orders_365d: i64,
    #[diesel(sql_type = BigInt)]
    spend_30d: i64,
    #[diesel(sql_type = BigInt)]
    spend_90d: i64,
    #[diesel(sql_type = BigInt)]
    spend_365d: i64,
}

/// Whole days from `from` to `now`.
fn days(from: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a count of days, far within f64's exact integers"
    )]
    let days = (now.date_naive() - from.date_naive()).num_days() as f64;
    Value::Number(days)
}

/// The facts about `subject` as of `now`, or `None` when the projection does not know it.
/// Amounts are in major units: minor units divided by `10^minor_units`.
pub fn load(
    conn: &mut PgConnection,
    subject: Uuid,
    now: DateTime<Utc>,
    minor_units: u32,
) -> QueryResult<Option<CustomerFacts>> {
    let Some(customer) = projection::find_customer(conn, subject)? else {
        return Ok(None);
    };
    let scale = 10_f64.powi(i32::try_from(minor_units).unwrap_or(2));
    #[expect(
        clippy::cast_precision_loss,
        reason = "reporting amounts and counts, far within f64's exact integers"
    )]
    let number = |n: i64| Value::Number(n as f64);
    #[expect(
        clippy::cast_precision_loss,
        reason = "reporting amounts, far within f64's exact integers"
    )]
    let money = |minor: i64| Value::Number(minor as f64 / scale);
    let CustomerRow {
        restricted,
        created_at,
        first_purchase_at,
        last_purchase_at,
        order_count,
        return_count,
        monetary_minor,
        visit_days,
        last_visit_at,
        ..
    } = customer;
    let mut facts = HashMap::from([
        ("orders".to_owned(), number(i64::from(order_count))),
        ("returns".to_owned(), number(i64::from(return_count))),
        ("spend".to_owned(), money(monetary_minor)),
        ("visit_days".to_owned(), number(i64::from(visit_days))),
        ("days_as_customer".to_owned(), days(created_at, now)),
    ]);
    for (field, at) in [
        ("days_since_first_order", first_purchase_at),
        ("days_since_last_order", last_purchase_at),
        ("days_since_last_visit", last_visit_at),
    ] {
        if let Some(at) = at {
            facts.insert(field.to_owned(), days(at, now));
        }
    }
    let windowed: Windowed = diesel::sql_query(
        "SELECT \
           count(*) FILTER (WHERE kind = 'order' AND occurred_at > $2 - INTERVAL '30 days') AS orders_30d, \
           count(*) FILTER (WHERE kind = 'order' AND occurred_at > $2 - INTERVAL '90 days') AS orders_90d, \
           count(*) FILTER (WHERE kind = 'order' AND occurred_at > $2 - INTERVAL '365 days') AS orders_365d, \
           COALESCE(sum(CASE WHEN kind = 'order' THEN reporting_minor ELSE -reporting_minor END) \
             FILTER (WHERE occurred_at > $2 - INTERVAL '30 days'), 0)::bigint AS spend_30d, \
           COALESCE(sum(CASE WHEN kind = 'order' THEN reporting_minor ELSE -reporting_minor END) \
             FILTER (WHERE occurred_at > $2 - INTERVAL '90 days'), 0)::bigint AS spend_90d, \
           COALESCE(sum(CASE WHEN kind = 'order' THEN reporting_minor ELSE -reporting_minor END) \
             FILTER (WHERE occurred_at > $2 - INTERVAL '365 days'), 0)::bigint AS spend_365d \
         FROM orders WHERE subject_id = $1 AND occurred_at <= $2",
    )
    .bind::<SqlUuid, _>(subject)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)?;
    let counts = [
        windowed.orders_30d,
        windowed.orders_90d,
        windowed.orders_365d,
    ];
    let spends = [windowed.spend_30d, windowed.spend_90d, windowed.spend_365d];
    for ((window, orders), spend) in WINDOWS.iter().zip(counts).zip(spends) {
        facts.insert(format!("orders_{window}d"), number(orders));
        facts.insert(format!("spend_{window}d"), money(spend));
    }
    if let Some(job) = rfm::find_current(conn)?
        && let Some(score) = rfm::find_score(conn, job.id, subject)?
    {
        for (field, value) in [("rfm.r", score.r), ("rfm.f", score.f), ("rfm.m", score.m)] {
            if let Some(value) = value {
                facts.insert(field.to_owned(), number(i64::from(value)));
            }
        }
        if let Some(segment) = score.segment {
            facts.insert("rfm.segment".to_owned(), Value::Text(segment));
        }
    }
    Ok(Some(CustomerFacts { restricted, facts }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_field_has_a_type() {
        for window in WINDOWS {
            assert_eq!(
                field_type(&format!("orders_{window}d")),
                Some(FieldType::Number)
            );
            assert_eq!(
                field_type(&format!("spend_{window}d")),
                Some(FieldType::Number)
            );
        }
        assert_eq!(field_type("rfm.segment"), Some(FieldType::Text));
        assert_eq!(field_type("country"), None);
    }
}
