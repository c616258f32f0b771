//! The facts a rule can read about a customer, from the projection (profile attributes
//! included) and the latest RFM computation, and their types; and, for facts that move with time alone (days since, orders
//! in the last N days), the instants they next change, so that a membership is evaluated again
//! exactly when it can flip.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Days, NaiveTime, TimeDelta, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::projection::attributes;
use crate::projection::store::CustomerRow;
use crate::rfm::store as rfm;
use crate::rules::{FieldType, Rule, Value};
use crate::schema::segmentation::{customers, orders, profiling_objections, rfm_scores};

/// Windows of the `orders_<N>d` and `spend_<N>d` facts, in days.
const WINDOWS: [u64; 3] = [30, 90, 365];
/// The longest of them: orders older than this never count in a window again.
const LONGEST_WINDOW: i64 = 365;

/// Facts counted in whole days until today (UTC), each from its customer instant.
const DAY_COUNTS: [&str; 4] = [
    "days_as_customer",
    "days_since_first_order",
    "days_since_last_order",
    "days_since_last_visit",
];

/// Fields of the RFM computation.
pub const RFM_FIELDS: [&str; 4] = ["rfm.r", "rfm.f", "rfm.m", "rfm.segment"];

/// Fields an order or a return can change.
pub const ORDER_FIELDS: [&str; 11] = [
    "orders",
    "returns",
    "spend",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "spend_30d",
    "spend_90d",
    "spend_365d",
    "days_since_first_order",
    "days_since_last_order",
];

/// Fields a page or product view can change.
pub const VISIT_FIELDS: [&str; 2] = ["visit_days", "days_since_last_visit"];

/// Standard profile attributes, as profiles' feed gives them: text, not moving with time.
pub const PROFILE_FIELDS: [&str; 2] = ["country", "locale"];

/// The prefix of custom profile attributes' fields: `custom.<key>`, any key a rule can name
/// (`[a-z_][a-z0-9_]*`), as text.
pub const CUSTOM_PREFIX: &str = "custom.";

/// Whether `field` is a profile attribute: `country`, `locale` or `custom.<key>`.
pub fn is_attribute_field(field: &str) -> bool {
    PROFILE_FIELDS.contains(&field)
        || field.strip_prefix(CUSTOM_PREFIX).is_some_and(|key| {
            key.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// The type of each field rules may name.
pub fn field_type(field: &str) -> Option<FieldType> {
    if field == "rfm.segment" || is_attribute_field(field) {
        Some(FieldType::Text)
    } else if ORDER_FIELDS.contains(&field)
        || VISIT_FIELDS.contains(&field)
        || DAY_COUNTS.contains(&field)
        || RFM_FIELDS.contains(&field)
    {
        Some(FieldType::Number)
    } else {
        None
    }
}

/// The window of an `orders_<N>d` or `spend_<N>d` field, in days.
fn window_of(field: &str) -> Option<u64> {
    let days = field
        .strip_prefix("orders_")
        .or_else(|| field.strip_prefix("spend_"))?
        .strip_suffix('d')?;
    WINDOWS.into_iter().find(|w| w.to_string() == days)
}

/// An order or a return in the longest window, or later.
#[derive(Debug, Clone)]
struct RecentOrder {
    at: DateTime<Utc>,
    is_order: bool,
    reporting_minor: Option<i64>,
}

/// One customer's RFM score in the latest computation.
#[derive(Debug, Clone, Default, Queryable)]
struct RfmFacts {
    r: Option<i16>,
    f: Option<i16>,
    m: Option<i16>,
    segment: Option<String>,
}

/// What a customer's facts are computed from: enough to give them at any instant from the
/// one the timeline was loaded at on, until the projection changes.
#[derive(Debug, Clone)]
pub struct Timeline {
    customer: CustomerRow,
    /// Objected to profiling.
    objected: bool,
    recent: Vec<RecentOrder>,
    rfm: Option<RfmFacts>,
    /// Profile attributes by field name; one the customer lacks is no fact.
    attributes: Vec<(String, String)>,
}

/// Whole days from `from`'s day to `now`'s (UTC).
fn days_between(from: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now.date_naive() - from.date_naive()).num_days()
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts and amounts, far within f64's exact integers"
)]
fn number(n: i64) -> Value {
    Value::Number(n as f64)
}

impl Timeline {
    /// Whether processing is restricted: then the customer is in no segment.
    pub fn restricted(&self) -> bool {
        self.customer.restricted
    }

    /// Whether the customer objected to profiling: then they are in no segment.
    pub fn objected(&self) -> bool {
        self.objected
    }

    /// Whether the customer is kept out of every segment, restricted or objecting.
    pub fn excluded(&self) -> bool {
        self.restricted() || self.objected()
    }

    /// The instant each day-count field counts from, if the customer has it.
    fn day_count_base(&self, field: &str) -> Option<DateTime<Utc>> {
        match field {
            "days_as_customer" => Some(self.customer.created_at),
            "days_since_first_order" => self.customer.first_purchase_at,
            "days_since_last_order" => self.customer.last_purchase_at,
            "days_since_last_visit" => self.customer.last_visit_at,
            _ => None,
        }
    }

    /// The facts as of `now`. Amounts are in major units: minor units divided by
    /// `10^minor_units`.
    pub fn facts_at(&self, now: DateTime<Utc>, minor_units: u32) -> HashMap<String, Value> {
        let scale = 10_f64.powi(i32::try_from(minor_units).unwrap_or(2));
        #[expect(
            clippy::cast_precision_loss,
            reason = "reporting amounts, far within f64's exact integers"
        )]
        let money = |minor: i64| Value::Number(minor as f64 / scale);
        let c = &self.customer;
        let mut facts = HashMap::from([
            ("orders".to_owned(), number(i64::from(c.order_count))),
            ("returns".to_owned(), number(i64::from(c.return_count))),
            ("spend".to_owned(), money(c.monetary_minor)),
            ("visit_days".to_owned(), number(i64::from(c.visit_days))),
        ]);
        for field in DAY_COUNTS {
            if let Some(base) = self.day_count_base(field) {
                facts.insert(field.to_owned(), number(days_between(base, now)));
            }
        }
        for window in WINDOWS {
            let since = now - Days::new(window);
            let (mut count, mut spend) = (0, 0);
            for order in self.recent.iter().filter(|o| o.at > since && o.at <= now) {
                let amount = order.reporting_minor.unwrap_or(0);
                if order.is_order {
                    count += 1;
                    spend += amount;
                } else {
                    spend -= amount;
                }
            }
            facts.insert(format!("orders_{window}d"), number(count));
            facts.insert(format!("spend_{window}d"), money(spend));
        }
        if let Some(score) = &self.rfm {
            for (field, value) in [("rfm.r", score.r), ("rfm.f", score.f), ("rfm.m", score.m)] {
                if let Some(value) = value {
                    facts.insert(field.to_owned(), number(i64::from(value)));
                }
            }
            if let Some(segment) = &score.segment {
                facts.insert("rfm.segment".to_owned(), Value::Text(segment.clone()));
            }
        }
        for (field, value) in &self.attributes {
            facts.insert(field.clone(), Value::Text(value.clone()));
        }
        facts
    }

    /// The instants after `now`, in order, at which a fact `rule` reads can change with time
    /// alone in a way that can change a condition's result: a day count reaching a number the
    /// rule compares it with, an order entering or leaving a window the rule reads.
    fn instants_after(&self, rule: &Rule, now: DateTime<Utc>) -> BTreeSet<DateTime<Utc>> {
        let mut instants = BTreeSet::new();
        for field in rule.fields() {
            if let Some(base) = self.day_count_base(&field) {
                for literal in rule.numbers(&field) {
                    // An integer count crosses `literal` between these values.
                    for days in [literal.floor(), literal.floor() + 1.0, literal.ceil()] {
                        if let Some(at) = day_count_reaches(base, days)
                            && at > now
                        {
                            instants.insert(at);
                        }
                    }
                }
            } else if let Some(window) = window_of(&field) {
                for order in &self.recent {
                    for at in [Some(order.at), order.at.checked_add_days(Days::new(window))] {
                        if let Some(at) = at.filter(|at| *at > now) {
                            instants.insert(at);
                        }
                    }
                }
            }
        }
        instants
    }

    /// Whether the customer is in the segment of `rule` at `now`, and the first later
    /// instant at which that answer changes if nothing else happens (none when it never does).
    pub fn membership(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        minor_units: u32,
    ) -> (bool, Option<DateTime<Utc>>) {
        if self.excluded() {
            return (false, None);
        }
        let member = rule.evaluate(&self.facts_at(now, minor_units)).matched;
        let flips = self
            .instants_after(rule, now)
            .into_iter()
            .find(|at| rule.evaluate(&self.facts_at(*at, minor_units)).matched != member);
        (member, flips)
    }
}

/// The first instant a count of whole days from `base`'s day is `days`: that day's midnight
/// (UTC). None for a count that cannot be reached (negative, or beyond any date).
fn day_count_reaches(base: DateTime<Utc>, days: f64) -> Option<DateTime<Utc>> {
    if !(0.0..=1_000_000.0).contains(&days) {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a whole number of days between 0 and 1,000,000, checked above"
    )]
    let days = days as u64;
    let day = base.date_naive().checked_add_days(Days::new(days))?;
    Some(day.and_time(NaiveTime::MIN).and_utc())
}

/// The timelines of `subjects` the projection knows, as loaded at `now`.
pub fn load(
    conn: &mut PgConnection,
    subjects: &[Uuid],
    now: DateTime<Utc>,
) -> QueryResult<HashMap<Uuid, Timeline>> {
    // The customer, its objection and its current score in one read: this runs for every
    // change the feed brings.
    let rows: Vec<(CustomerRow, Option<Uuid>, Option<RfmFacts>)> = customers::table
        .left_join(
            profiling_objections::table
                .on(profiling_objections::subject_id.eq(customers::subject_id)),
        )
        .left_join(
            rfm_scores::table.on(rfm_scores::subject_id
                .eq(customers::subject_id)
                .and(rfm_scores::job_id.eq_any(rfm::current_id()))),
        )
        .filter(customers::subject_id.eq_any(subjects))
        .select((
            CustomerRow::as_select(),
            profiling_objections::subject_id.nullable(),
            (
                rfm_scores::r,
                rfm_scores::f,
                rfm_scores::m,
                rfm_scores::segment,
            )
                .nullable(),
        ))
        .load(conn)?;
    let since = now - TimeDelta::days(LONGEST_WINDOW);
    let recent: Vec<(Uuid, DateTime<Utc>, String, Option<i64>)> = orders::table
        .filter(orders::subject_id.eq_any(subjects))
        .filter(orders::occurred_at.gt(since))
        .select((
            orders::subject_id,
            orders::occurred_at,
            orders::kind,
            orders::reporting_minor,
        ))
        .load(conn)?;
    let mut profile_attributes: HashMap<Uuid, Vec<(String, String)>> = HashMap::new();
    for (subject, field, value) in attributes::list_by_subjects(conn, subjects)? {
        profile_attributes
            .entry(subject)
            .or_default()
            .push((field, value));
    }
    let mut timelines: HashMap<Uuid, Timeline> = rows
        .into_iter()
        .map(|(customer, objection, rfm)| {
            let subject = customer.subject_id;
            let timeline = Timeline {
                objected: objection.is_some(),
                customer,
                recent: Vec::new(),
                rfm,
                attributes: profile_attributes.remove(&subject).unwrap_or_default(),
            };
            (subject, timeline)
        })
        .collect();
    for (subject, at, kind, reporting_minor) in recent {
        if let Some(timeline) = timelines.get_mut(&subject) {
            timeline.recent.push(RecentOrder {
                at,
                is_order: kind == "order",
                reporting_minor,
            });
        }
    }
    Ok(timelines)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

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
            assert_eq!(window_of(&format!("spend_{window}d")), Some(window));
        }
        for field in DAY_COUNTS {
            assert_eq!(field_type(field), Some(FieldType::Number));
        }
        assert_eq!(field_type("rfm.segment"), Some(FieldType::Text));
        for field in [
            "country",
            "locale",
            "custom.tier",
            "custom._x9",
            "custom.in",
        ] {
            assert_eq!(field_type(field), Some(FieldType::Text), "{field}");
        }
        for field in [
            "custom.",
            "custom.a.b",
            "custom.9lives",
            "custom.Tier",
            "city",
        ] {
            assert_eq!(field_type(field), None, "{field}");
        }
        assert_eq!(window_of("orders_7d"), None);
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap()
    }

    fn timeline(orders: &[(DateTime<Utc>, i64)]) -> Timeline {
        Timeline {
            customer: CustomerRow {
                subject_id: Uuid::nil(),
                created_at: at(1, 9),
                restricted: false,
                first_purchase_at: orders.iter().map(|o| o.0).min(),
                last_purchase_at: orders.iter().map(|o| o.0).max(),
                order_count: i32::try_from(orders.len()).unwrap(),
                return_count: 0,
                monetary_minor: orders.iter().map(|o| o.1).sum(),
                unvalued_count: 0,
                visit_days: 0,
                last_visit_at: None,
                last_interaction_at: None,
                updated_at: at(1, 9),
            },
            recent: orders
                .iter()
                .map(|(at, amount)| RecentOrder {
                    at: *at,
                    is_order: true,
                    reporting_minor: Some(*amount),
                })
                .collect(),
            rfm: None,
            objected: false,
            attributes: Vec::new(),
        }
    }

    fn rule(source: &str) -> Rule {
        Rule::parse(source, &field_type).unwrap()
    }

    #[test]
    fn a_day_count_flips_at_the_midnight_it_crosses_the_literal() {
        let t = timeline(&[(at(2, 15), 1000)]);
        // Last order on the 2nd: 30 days since on 1 November.
        let (member, flips) = t.membership(&rule("days_since_last_order > 30"), at(10, 12), 2);
        assert!(!member);
        assert_eq!(
            flips,
            Some(Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap())
        );
        // A condition time cannot change has nothing to schedule.
        assert_eq!(
            t.membership(&rule("orders >= 1"), at(10, 12), 2),
            (true, None)
        );
    }

    #[test]
    fn a_windowed_count_flips_when_enough_orders_leave_the_window() {
        let t = timeline(&[(at(1, 10), 500), (at(5, 10), 500), (at(9, 10), 500)]);
        let (member, flips) = t.membership(&rule("orders_30d >= 2"), at(20, 0), 2);
        assert!(member);
        // The first order leaving (31 October) leaves two: the second leaving flips it.
        assert_eq!(
            flips,
            Some(Utc.with_ymd_and_hms(2026, 11, 4, 10, 0, 0).unwrap())
        );
        let (member, flips) = t.membership(&rule("spend_30d > 12"), at(20, 0), 2);
        assert!(member);
        assert_eq!(
            flips,
            Some(Utc.with_ymd_and_hms(2026, 10, 31, 10, 0, 0).unwrap())
        );
    }

    #[test]
    fn profile_attributes_are_text_facts_that_time_does_not_move() {
        let mut t = timeline(&[(at(2, 15), 1000)]);
        t.attributes = vec![
            ("country".to_owned(), "FR".to_owned()),
            ("custom.tier".to_owned(), "gold".to_owned()),
        ];
        let facts = t.facts_at(at(10, 12), 2);
        assert_eq!(facts.get("country"), Some(&Value::Text("FR".to_owned())));
        assert_eq!(facts.get("locale"), None);
        let french = rule(r#"country == "FR" and orders >= 1 and custom.tier in ["gold"]"#);
        assert_eq!(t.membership(&french, at(10, 12), 2), (true, None));
        // No locale: a condition on it is false, `!=` included.
        assert_eq!(
            t.membership(&rule(r#"locale != "fr-FR""#), at(10, 12), 2),
            (false, None)
        );
        t.attributes.clear();
        assert_eq!(t.membership(&french, at(10, 12), 2), (false, None));
    }

    #[test]
    fn a_restricted_or_objecting_customer_is_in_nothing_and_has_nothing_scheduled() {
        let mut t = timeline(&[(at(2, 15), 1000)]);
        t.customer.restricted = true;
        assert_eq!(
            t.membership(&rule("orders >= 1"), at(10, 12), 2),
            (false, None)
        );
        let mut t = timeline(&[(at(2, 15), 1000)]);
        t.objected = true;
        assert_eq!(
            t.membership(&rule("orders >= 1"), at(10, 12), 2),
            (false, None)
        );
    }
}
