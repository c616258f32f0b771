//! After any sequence of changes from the feed (profile attributes included), passing time,
//! restrictions, merges, erasures and new segments, the memberships kept incrementally are those a full evaluation of every
//! customer for every segment gives.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use diesel::prelude::*;
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::profiles::v1 as pb;
use proptest::prelude::*;
use uuid::Uuid;

use super::facts;
use super::maintain::Maintainer;
use super::store::{self, SegmentRow};
use crate::config::SegmentationConfig;
use crate::projection::domain::Projection;
use crate::rules::Rule;
use crate::schema::segmentation::{customers, memberships};

/// Rules reading every kind of fact, time-dependent ones above all.
const RULES: [&str; 8] = [
    r#"country == "FR" and orders >= 1"#,
    "orders_30d >= 2",
    "days_since_last_order > 10 and orders >= 1",
    "spend_90d > 20 or visit_days >= 2",
    "days_as_customer >= 5 and not (returns > 0)",
    "days_since_last_visit <= 3",
    "orders_365d in [1, 3] and days_since_first_order >= 40",
    r#"custom.tier == "gold" or (locale != "fr-FR" and days_since_last_order <= 5)"#,
];
/// Segments defined before the first change; the others come with `Step::Define`.
const DEFINED_FIRST: usize = 5;
/// Countries, locales and tiers attribute changes set (or clear, out of range).
const COUNTRIES: [&str; 2] = ["FR", "DE"];
const LOCALES: [&str; 2] = ["fr-FR", "de-DE"];
const TIERS: [&str; 2] = ["gold", "silver"];
const SUBJECTS: usize = 4;

#[derive(Debug, Clone)]
enum Step {
    Created(usize),
    Order {
        who: usize,
        days_ago: u32,
        euros: i64,
    },
    Return {
        who: usize,
        days_ago: u32,
        euros: i64,
    },
    View {
        who: usize,
        hours_ago: u32,
    },
    Restrict {
        who: usize,
        on: bool,
    },
    Merge {
        into: usize,
        from: usize,
    },
    Erase(usize),
    /// Profile attributes changed: each an index into its list, out of range for none.
    Attributes {
        who: usize,
        country: usize,
        locale: usize,
        tier: usize,
    },
    Advance {
        hours: u32,
    },
    Define(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let who = 0..SUBJECTS;
    let step = prop_oneof![
        1 => who.clone().prop_map(Step::Created),
        3 => (who.clone(), 0_u32..120, 1_i64..40)
            .prop_map(|(who, days_ago, euros)| Step::Order { who, days_ago, euros }),
        1 => (who.clone(), 0_u32..60, 1_i64..40)
            .prop_map(|(who, days_ago, euros)| Step::Return { who, days_ago, euros }),
        2 => (who.clone(), 0_u32..200).prop_map(|(who, hours_ago)| Step::View { who, hours_ago }),
        1 => (who.clone(), any::<bool>()).prop_map(|(who, on)| Step::Restrict { who, on }),
        1 => (who.clone(), who.clone()).prop_map(|(into, from)| Step::Merge { into, from }),
        1 => who.clone().prop_map(Step::Erase),
        3 => (who, 0_usize..3, 0_usize..3, 0_usize..3)
            .prop_map(|(who, country, locale, tier)| Step::Attributes { who, country, locale, tier }),
        3 => (1_u32..(24 * 40)).prop_map(|hours| Step::Advance { hours }),
        1 => (DEFINED_FIRST..RULES.len()).prop_map(Step::Define),
    ];
    prop::collection::vec(step, 1..40)
}

fn change(kind: pb::ChangeKind, subject: Uuid, now: DateTime<Utc>) -> pb::Change {
    pb::Change {
        kind: kind.into(),
        subject_id: subject.to_string(),
        occurred_at: Some(to_timestamp(now)),
        ..Default::default()
    }
}

fn interaction(
    subject: Uuid,
    now: DateTime<Utc>,
    kind: pb::InteractionKind,
    at: DateTime<Utc>,
    euros: i64,
) -> pb::Change {
    pb::Change {
        interaction: Some(pb::InteractionSummary {
            interaction_id: Uuid::now_v7().to_string(),
            kind: kind.into(),
            occurred_at: Some(to_timestamp(at)),
            order_id: "o".to_owned(),
            amount: Some(common::Money {
                amount_minor: euros * 100,
                currency: "EUR".to_owned(),
            }),
            ..Default::default()
        }),
        ..change(pb::ChangeKind::InteractionRecorded, subject, now)
    }
}

/// The change a step is at profiles, as of `now`.
fn feed_change(step: &Step, subjects: &[Uuid], now: DateTime<Utc>) -> Option<pb::Change> {
    Some(match *step {
        Step::Created(who) => change(pb::ChangeKind::Created, subjects[who], now),
        Step::Order {
            who,
            days_ago,
            euros,
        } => interaction(
            subjects[who],
            now,
            pb::InteractionKind::Order,
            now - TimeDelta::days(i64::from(days_ago)),
            euros,
        ),
        Step::Return {
            who,
            days_ago,
            euros,
        } => interaction(
            subjects[who],
            now,
            pb::InteractionKind::Return,
            now - TimeDelta::days(i64::from(days_ago)),
            euros,
        ),
        Step::View { who, hours_ago } => interaction(
            subjects[who],
            now,
            pb::InteractionKind::PageView,
            now - TimeDelta::hours(i64::from(hours_ago)),
            0,
        ),
        Step::Restrict { who, on } => pb::Change {
            restricted: on,
            ..change(pb::ChangeKind::Restricted, subjects[who], now)
        },
        Step::Merge { into, from } if into != from => pb::Change {
            merged_subject_id: subjects[from].to_string(),
            ..change(pb::ChangeKind::Merged, subjects[into], now)
        },
        Step::Erase(who) => change(pb::ChangeKind::Erased, subjects[who], now),
        Step::Attributes {
            who,
            country,
            locale,
            tier,
        } => pb::Change {
            country: COUNTRIES
                .get(country)
                .copied()
                .unwrap_or_default()
                .to_owned(),
            locale: LOCALES.get(locale).copied().unwrap_or_default().to_owned(),
            custom: TIERS
                .get(tier)
                .map(|tier| {
                    (
                        "tier".to_owned(),
                        pb::AttributeValue {
                            value: Some(pb::attribute_value::Value::StringValue(
                                (*tier).to_owned(),
                            )),
                        },
                    )
                })
                .into_iter()
                .collect(),
            ..change(pb::ChangeKind::Updated, subjects[who], now)
        },
        Step::Merge { .. } | Step::Advance { .. } | Step::Define(_) => return None,
    })
}

fn define(conn: &mut PgConnection, index: usize, now: DateTime<Utc>) {
    let rule = Rule::parse(RULES[index], &facts::field_type).unwrap();
    store::insert(
        conn,
        &SegmentRow {
            name: format!("s{index}"),
            description: String::new(),
            rule: rule.source().to_owned(),
            fields: rule.fields().into_iter().map(Some).collect(),
            created_by: "test".to_owned(),
            created_at: now,
            populated_at: None,
        },
    )
    .unwrap();
}

/// What the background upkeep does at `now`: every sweep, every due evaluation.
fn upkeep(conn: &mut PgConnection, maintainer: &Maintainer, now: DateTime<Utc>) {
    while maintainer.sweep_step(conn, now, 2).unwrap() {}
    while maintainer.run_due(conn, now, 3).unwrap() > 0 {}
}

/// Every (segment, customer) pair in the segment by a full evaluation at `now`.
fn recomputed(
    conn: &mut PgConnection,
    maintainer: &Maintainer,
    now: DateTime<Utc>,
) -> BTreeSet<(String, Uuid)> {
    let everyone: Vec<Uuid> = customers::table
        .select(customers::subject_id)
        .load(conn)
        .unwrap();
    let timelines = facts::load(conn, &everyone, now).unwrap();
    let mut members = BTreeSet::new();
    for (segment, _) in maintainer.segments(conn).unwrap() {
        for (subject, timeline) in &timelines {
            if timeline.membership(&segment.rule, now, 2).0 {
                members.insert((segment.name.clone(), *subject));
            }
        }
    }
    members
}

fn kept(conn: &mut PgConnection) -> BTreeSet<(String, Uuid)> {
    memberships::table
        .select((memberships::segment, memberships::subject_id))
        .load::<(String, Uuid)>(conn)
        .unwrap()
        .into_iter()
        .collect()
}

fn reset(conn: &mut PgConnection) {
    diesel::sql_query(
        "TRUNCATE membership_events, membership_checks, memberships, segments, customers, \
         customer_attributes, orders, daily_visits, rfm_scores, rfm_jobs",
    )
    .execute(conn)
    .unwrap();
}

#[test]
fn incremental_membership_equals_a_full_evaluation() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(ecrm_testkit::TestDatabase::new(&[&crate::SERVICE]));
    let db = runtime.block_on(database.db(&crate::SERVICE)).unwrap();
    let maintainer = Arc::new(Maintainer::new(2));
    let projection = Arc::new(Projection::new(
        SegmentationConfig::new().rates().unwrap(),
        maintainer.clone(),
    ));
    let config = ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in steps())| {
        let (maintainer, projection) = (maintainer.clone(), projection.clone());
        let outcome = runtime.block_on(db.run(move |conn| {
            reset(conn);
            let subjects: Vec<Uuid> = (0..SUBJECTS).map(|_| Uuid::now_v7()).collect();
            let mut now = Utc.with_ymd_and_hms(2026, 10, 1, 8, 30, 0).unwrap();
            for index in 0..DEFINED_FIRST {
                define(conn, index, now);
            }
            upkeep(conn, &maintainer, now);
            for (i, step) in steps.iter().enumerate() {
                match step {
                    Step::Advance { hours } => now += TimeDelta::hours(i64::from(*hours)),
                    Step::Define(index) => {
                        if store::find(conn, &format!("s{index}")).unwrap().is_none() {
                            define(conn, *index, now);
                        }
                    }
                    _ => {
                        if let Some(change) = feed_change(step, &subjects, now) {
                            projection.apply_at(conn, &[change], now).unwrap();
                        }
                    }
                }
                upkeep(conn, &maintainer, now);
                let (kept, expected) = (kept(conn), recomputed(conn, &maintainer, now));
                if kept != expected {
                    return Ok::<_, crate::SegmentationError>(Err(format!(
                        "after step {i} ({step:?}) at {now}: kept {kept:?}, expected {expected:?}"
                    )));
                }
            }
            Ok(Ok(()))
        })).unwrap();
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    });
}
