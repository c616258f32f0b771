//! The gate's decision is interleaved with I/O: consent and profiles are asked over gRPC, the
//! restrictions, unsubscriptions, suppressions and templates of a batch are read from the
//! database, and the frequency cap is counted and reserved in SQL under a lock per subject. Its
//! one pure check with a function of its own is quiet hours: whether a marketing message falls
//! in the recipient's local quiet hours (21:00-08:00 here) and, if so, when they end. Measured
//! outside them (what most sends pay), inside them before midnight and after midnight.
//! Run: `cargo bench -p ecrm-outbound --bench gate`.
#![expect(clippy::unwrap_used, reason = "a benchmark fails by panicking")]

use std::hint::black_box;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use criterion::{Criterion, criterion_group, criterion_main};
use ecrm_outbound::QuietHours;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn quiet_hours(c: &mut Criterion) {
    let quiet = QuietHours::parse("21:00-08:00").unwrap();
    // Paris is UTC+1 in January.
    let cases = [
        ("outside", at("2026-01-10T11:00:00Z"), None),
        (
            "inside_evening",
            at("2026-01-10T21:30:00Z"),
            Some(at("2026-01-11T07:00:00Z")),
        ),
        (
            "inside_morning",
            at("2026-01-10T05:00:00Z"),
            Some(at("2026-01-10T07:00:00Z")),
        ),
    ];
    let mut group = c.benchmark_group("gate/quiet_hours");
    for (name, now, until) in cases {
        assert_eq!(quiet.ends_after(now, Paris), until);
        group.bench_function(name, |b| {
            b.iter(|| black_box(&quiet).ends_after(black_box(now), black_box(Paris)))
        });
    }
    group.finish();
}

criterion_group!(benches, quiet_hours);
criterion_main!(benches);
