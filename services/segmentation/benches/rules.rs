//! The segment rule language: parsing a realistic rule against the service's schema of facts,
//! and evaluating the parsed rule on one customer's facts (in the form the service builds them,
//! every condition evaluated and explained), for a customer in the segment and one out of it.
//! Evaluation runs in Rust, not in SQL. Run: `cargo bench -p ecrm-segmentation --bench rules`.
#![expect(clippy::unwrap_used, reason = "a benchmark fails by panicking")]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ecrm_segmentation::{Rule, Value, field_type};

/// Five conditions over attributes, order windows, day counts and RFM, nested once.
const RULE: &str = r#"country == "FR" and orders_90d >= 2
    and rfm.segment in ["Champions", "Loyal", "Potential Loyalist"]
    and not (days_since_last_order > 60 or spend_365d < 100)
    or custom.tier == "gold""#;

/// One customer's facts, every field the service gives (the ones `facts_at` fills in).
fn facts(country: &str, orders_90d: f64) -> HashMap<String, Value> {
    let number = |field: &str, n: f64| (field.to_owned(), Value::Number(n));
    let text = |field: &str, t: &str| (field.to_owned(), Value::Text(t.to_owned()));
    HashMap::from([
        number("orders", 14.0),
        number("returns", 1.0),
        number("spend", 1287.5),
        number("visit_days", 41.0),
        number("days_as_customer", 820.0),
        number("days_since_first_order", 790.0),
        number("days_since_last_order", 12.0),
        number("days_since_last_visit", 3.0),
        number("orders_30d", 1.0),
        number("orders_90d", orders_90d),
        number("orders_365d", 6.0),
        number("spend_30d", 59.9),
        number("spend_90d", 182.3),
        number("spend_365d", 611.0),
        number("rfm.r", 5.0),
        number("rfm.f", 4.0),
        number("rfm.m", 4.0),
        text("rfm.segment", "Champions"),
        text("country", country),
        text("locale", "fr-FR"),
        text("custom.tier", "silver"),
    ])
}

fn rules(c: &mut Criterion) {
    let rule = Rule::parse(RULE, &field_type).unwrap();
    let member = facts("FR", 3.0);
    let other = facts("DE", 0.0);
    assert!(rule.evaluate(&member).matched);
    assert!(!rule.evaluate(&other).matched);

    let mut group = c.benchmark_group("rules");
    group.bench_function("parse", |b| {
        b.iter(|| Rule::parse(black_box(RULE), &field_type).unwrap())
    });
    group.bench_function("evaluate/member", |b| {
        b.iter(|| rule.evaluate(black_box(&member)))
    });
    group.bench_function("evaluate/not_member", |b| {
        b.iter(|| rule.evaluate(black_box(&other)))
    });
    group.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
