//! Loyalty tiers through the running services: orders recorded at profiles, projected, and
//! tiers asked at past and future instants.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::tiers_client::TiersClient;
use support::*;

/// An instant of 2026, UTC.
fn time(month: u32, day: u32, hour: u32) -> Option<prost_types::Timestamp> {
    let time = chrono::NaiveDate::from_ymd_opt(2026, month, day)
        .unwrap()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc();
    Some(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: 0,
    })
}

fn tiers(levels: &[(&str, i64)]) -> Vec<pb::Tier> {
    levels
        .iter()
        .map(|(name, threshold)| pb::Tier {
            name: (*name).to_owned(),
            threshold: *threshold,
        })
        .collect()
}

/// White from 0 orders, Black from 2, Gold from 4, over 30 days, kept 10 days.
fn club(name: &str, downgrade: pb::TierDowngrade) -> pb::TierProgram {
    pb::TierProgram {
        name: name.to_owned(),
        description: "orders over 30 days".to_owned(),
        measure: pb::TierMeasure::Orders.into(),
        window_days: 30,
        tiers: tiers(&[("White", 0), ("Black", 2), ("Gold", 4)]),
        retain_days: 10,
        downgrade: downgrade.into(),
        ..Default::default()
    }
}

impl Suite {
    fn tiers(&self) -> (TiersClient<tonic::transport::Channel>, String) {
        (
            self.segmentation.client(TiersClient::new),
            self.token("segmentation", &[Scope::SegmentsRead, Scope::SegmentsWrite]),
        )
    }

    async fn define_program(
        &self,
        program: pb::TierProgram,
    ) -> Result<pb::DefineTierProgramResponse, tonic::Status> {
        let (mut client, token) = self.tiers();
        client
            .define_tier_program(call(
                &token,
                pb::DefineTierProgramRequest {
                    program: Some(program),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn tier_at(
        &self,
        program: &str,
        subject: &str,
        as_of: Option<prost_types::Timestamp>,
    ) -> Result<pb::GetTierResponse, tonic::Status> {
        let (mut client, token) = self.tiers();
        client
            .get_tier(call(
                &token,
                pb::GetTierRequest {
                    program: program.to_owned(),
                    subject_id: subject.to_owned(),
                    as_of,
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn standing(
        &self,
        program: &str,
        subject: &str,
        as_of: Option<prost_types::Timestamp>,
    ) -> pb::TierStanding {
        let answer = self.tier_at(program, subject, as_of).await.unwrap();
        assert!(!answer.restricted);
        answer.standing.unwrap()
    }

    /// Four orders, on 1 to 4 October 2026 at noon, projected.
    async fn four_orders(&self, email: &str) -> String {
        let subject = self.customer(email).await;
        self.record(
            (1..=4)
                .map(|day| order(&subject, &format!("{email}-{day}"), day, 5_000, "EUR"))
                .collect(),
        )
        .await;
        self.aggregates_until(&subject, |a| a.is_some_and(|a| a["orders"] == 4))
            .await;
        subject
    }

    async fn restrict(&self, subject: &str) {
        self.segmentation
            .client(PersonalDataClient::new)
            .restrict(call(
                &self.token("segmentation", &[Scope::PrivacyExecute]),
                privacy::RestrictRequest {
                    subject_id: subject.to_owned(),
                    request_id: uuid::Uuid::now_v7().to_string(),
                    restricted: true,
                },
            ))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn tiers_rise_at_once_and_fall_one_level_per_retention() {
    let suite = Suite::start().await;
    let defined = suite
        .define_program(club("club", pb::TierDowngrade::OneLevel))
        .await
        .unwrap();
    assert!(defined.created);
    let ada = suite.four_orders("ada@example.com").await;

    // One order: the base tier, since the customer became known.
    let white = suite.standing("club", &ada, time(10, 1, 13)).await;
    assert_eq!((white.tier.as_str(), white.tier_index), ("White", 0));
    assert_eq!(white.measure, 1);
    assert_eq!(
        (white.next_tier.as_str(), white.next_tier_needed),
        ("Black", 1)
    );
    assert_eq!(white.since, time(10, 1, 12));
    assert!(white.kept_until.is_none());
    assert!(white.next_change_at.is_none() && white.next_change_tier.is_empty());

    // Two orders: Black at the second one. Kept at least 10 days from now; with no new order,
    // the first leaves the window on 31 October and Black ends 10 days later.
    let black = suite.standing("club", &ada, time(10, 2, 13)).await;
    assert_eq!((black.tier.as_str(), black.measure), ("Black", 2));
    assert_eq!(black.since, time(10, 2, 12));
    assert_eq!(black.kept_until, time(10, 12, 13));
    assert_eq!(
        (black.next_tier.as_str(), black.next_tier_needed),
        ("Gold", 2)
    );
    assert_eq!(black.next_change_at, time(11, 10, 12));
    assert_eq!(black.next_change_tier, "White");

    // Four: Gold. Below 4 from 31 October, so Gold ends on 10 November, one level down.
    let gold = suite.standing("club", &ada, time(10, 4, 13)).await;
    assert_eq!(
        (gold.tier.as_str(), gold.tier_index, gold.measure),
        ("Gold", 2, 4)
    );
    assert_eq!(gold.since, time(10, 4, 12));
    assert!(gold.next_tier.is_empty() && gold.next_tier_needed == 0);
    assert_eq!(gold.next_change_at, time(11, 10, 12));
    assert_eq!(gold.next_change_tier, "Black");

    // Retained: nothing left in the window since 3 November, Gold kept until 10 November.
    let retained = suite.standing("club", &ada, time(11, 5, 0)).await;
    assert_eq!((retained.tier.as_str(), retained.measure), ("Gold", 0));
    assert_eq!(retained.qualified_tier_index, 0);
    assert_eq!(retained.kept_until, time(11, 10, 12));

    // Black from 10 November, itself kept 10 days, then White.
    let lower = suite.standing("club", &ada, time(11, 10, 12)).await;
    assert_eq!(lower.tier, "Black");
    assert_eq!(lower.since, time(11, 10, 12));
    assert_eq!(lower.kept_until, time(11, 20, 12));
    assert_eq!(lower.next_change_at, time(11, 20, 12));
    assert_eq!(lower.next_change_tier, "White");
    let base = suite.standing("club", &ada, time(11, 20, 12)).await;
    assert_eq!(
        (base.tier.as_str(), base.since),
        ("White", time(11, 20, 12))
    );
    assert!(base.next_change_at.is_none());

    // A future date is answered too: nothing changes after.
    let later = suite.standing("club", &ada, time(12, 31, 0)).await;
    assert_eq!(later.tier, "White");
}

#[tokio::test]
async fn to_qualified_drops_straight_to_the_supported_tier() {
    let suite = Suite::start().await;
    suite
        .define_program(club("club-direct", pb::TierDowngrade::ToQualified))
        .await
        .unwrap();
    let bo = suite.four_orders("bo@example.com").await;

    let gold = suite.standing("club-direct", &bo, time(10, 4, 13)).await;
    assert_eq!(gold.tier, "Gold");
    assert_eq!(gold.next_change_at, time(11, 10, 12));
    assert_eq!(gold.next_change_tier, "White");
    let just_before = suite.standing("club-direct", &bo, time(11, 10, 11)).await;
    assert_eq!(just_before.tier, "Gold");
    let after = suite.standing("club-direct", &bo, time(11, 10, 12)).await;
    assert_eq!(
        (after.tier.as_str(), after.since),
        ("White", time(11, 10, 12))
    );
    assert!(after.next_change_at.is_none());
}

#[tokio::test]
async fn spend_counts_refunds_and_leaves_unvalued_orders_out() {
    let suite = Suite::start().await;
    let defined = suite
        .define_program(pb::TierProgram {
            name: "spenders".to_owned(),
            measure: pb::TierMeasure::Spend.into(),
            window_days: 365,
            // 100.00 and 200.00 EUR.
            tiers: tiers(&[("White", 0), ("Black", 10_000), ("Gold", 20_000)]),
            retain_days: 0,
            downgrade: pb::TierDowngrade::ToQualified.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .program
        .unwrap();
    assert_eq!(defined.currency, "EUR");

    let cy = suite.customer("cy@example.com").await;
    suite
        .record(vec![
            order(&cy, "C-1", 1, 15_000, "EUR"),
            // No rate for pounds: counted, not valued.
            order(&cy, "C-2", 2, 50_000, "GBP"),
            // 100.00 USD at 0.92: 92.00 EUR.
            order(&cy, "C-3", 3, 10_000, "USD"),
            refund(&cy, "C-1", 5, 10_000),
        ])
        .await;
    suite
        .aggregates_until(&cy, |a| a.is_some_and(|a| a["returns"] == 1))
        .await;

    let black = suite.standing("spenders", &cy, time(10, 2, 13)).await;
    assert_eq!((black.tier.as_str(), black.measure), ("Black", 15_000));
    let gold = suite.standing("spenders", &cy, time(10, 3, 13)).await;
    assert_eq!((gold.tier.as_str(), gold.measure), ("Gold", 24_200));
    // The refund takes 100.00 off; with no retention, down at once.
    let refunded = suite.standing("spenders", &cy, time(10, 5, 13)).await;
    assert_eq!(
        (refunded.tier.as_str(), refunded.measure),
        ("Black", 14_200)
    );
    assert_eq!(refunded.since, time(10, 5, 12));
    assert_eq!(
        (refunded.next_tier.as_str(), refunded.next_tier_needed),
        ("Gold", 5_800)
    );
    // 1 October 2027: the first order leaves the window, leaving 92.00 less the refund.
    assert_eq!(refunded.next_change_at, {
        let at = time(10, 1, 12).unwrap();
        Some(prost_types::Timestamp {
            seconds: at.seconds + 365 * 86_400,
            nanos: 0,
        })
    });
    assert_eq!(refunded.next_change_tier, "White");

    // Returns do not count against orders.
    suite
        .define_program(pb::TierProgram {
            name: "buyers".to_owned(),
            measure: pb::TierMeasure::Orders.into(),
            window_days: 365,
            tiers: tiers(&[("White", 0), ("Black", 3)]),
            retain_days: 0,
            downgrade: pb::TierDowngrade::ToQualified.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let buyer = suite.standing("buyers", &cy, time(10, 5, 13)).await;
    assert_eq!((buyer.tier.as_str(), buyer.measure), ("Black", 3));
}

#[tokio::test]
async fn restricted_customers_have_no_tier_and_unknown_ones_are_not_found() {
    let suite = Suite::start().await;
    suite
        .define_program(club("club", pb::TierDowngrade::OneLevel))
        .await
        .unwrap();
    let di = suite.four_orders("di@example.com").await;
    assert_eq!(
        suite.standing("club", &di, time(10, 4, 13)).await.tier,
        "Gold"
    );

    suite.restrict(&di).await;
    let restricted = suite.tier_at("club", &di, time(10, 4, 13)).await.unwrap();
    assert!(restricted.restricted);
    assert!(restricted.standing.is_none());
    assert_eq!(restricted.program, "club");

    let stranger = suite
        .tier_at("club", &uuid::Uuid::now_v7().to_string(), None)
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), tonic::Code::NotFound);
    let no_program = suite.tier_at("nothing", &di, None).await.unwrap_err();
    assert_eq!(no_program.code(), tonic::Code::NotFound);
    for (program, subject, as_of, field) in [
        ("club", "not-a-uuid", None, "subject_id"),
        ("Club!", di.as_str(), None, "program"),
        (
            "club",
            di.as_str(),
            Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            "as_of",
        ),
        (
            "club",
            di.as_str(),
            Some(prost_types::Timestamp {
                seconds: 300_000_000_000,
                nanos: 0,
            }),
            "as_of",
        ),
    ] {
        let status = suite.tier_at(program, subject, as_of).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            status.message().starts_with(&format!("invalid {field}:")),
            "{field}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn invalid_programs_are_refused_naming_the_field() {
    let suite = Suite::start().await;
    let valid = || club("club", pb::TierDowngrade::OneLevel);
    let cases: Vec<(pb::TierProgram, &str)> = vec![
        (
            pb::TierProgram {
                name: "Club".to_owned(),
                ..valid()
            },
            "program.name",
        ),
        (
            pb::TierProgram {
                measure: pb::TierMeasure::Unspecified.into(),
                ..valid()
            },
            "program.measure",
        ),
        (
            pb::TierProgram {
                measure: 42,
                ..valid()
            },
            "program.measure",
        ),
        (
            pb::TierProgram {
                downgrade: pb::TierDowngrade::Unspecified.into(),
                ..valid()
            },
            "program.downgrade",
        ),
        (
            pb::TierProgram {
                window_days: 0,
                ..valid()
            },
            "program.window_days",
        ),
        (
            pb::TierProgram {
                window_days: 3661,
                ..valid()
            },
            "program.window_days",
        ),
        (
            pb::TierProgram {
                retain_days: 4000,
                ..valid()
            },
            "program.retain_days",
        ),
        (
            pb::TierProgram {
                tiers: tiers(&[("White", 0)]),
                ..valid()
            },
            "program.tiers",
        ),
        (
            pb::TierProgram {
                tiers: (0..11)
                    .map(|i| pb::Tier {
                        name: format!("T{i}"),
                        threshold: i,
                    })
                    .collect(),
                ..valid()
            },
            "program.tiers",
        ),
        (
            pb::TierProgram {
                tiers: tiers(&[("White", 5), ("Black", 10)]),
                ..valid()
            },
            "program.tiers[0].threshold",
        ),
        (
            pb::TierProgram {
                tiers: tiers(&[("White", 0), ("Black", 2), ("Gold", 2)]),
                ..valid()
            },
            "program.tiers[2].threshold",
        ),
        (
            pb::TierProgram {
                tiers: tiers(&[("White", 0), ("", 2)]),
                ..valid()
            },
            "program.tiers[1].name",
        ),
        (
            pb::TierProgram {
                tiers: tiers(&[("White", 0), ("Black", 2), ("black", 4)]),
                ..valid()
            },
            "program.tiers[2].name",
        ),
    ];
    for (program, field) in cases {
        let status = suite.define_program(program).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            status.message().starts_with(&format!("invalid {field}:")),
            "{field}: {}",
            status.message()
        );
    }
    let (mut client, token) = suite.tiers();
    let missing = client
        .define_tier_program(call(&token, pb::DefineTierProgramRequest { program: None }))
        .await
        .unwrap_err();
    assert!(missing.message().starts_with("invalid program:"));

    // Named once: the same definition again creates nothing, another is refused.
    assert!(suite.define_program(valid()).await.unwrap().created);
    let again = suite.define_program(valid()).await.unwrap();
    assert!(!again.created);
    let other = suite
        .define_program(pb::TierProgram {
            retain_days: 11,
            ..valid()
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::AlreadyExists);

    let listed = client
        .list_tier_programs(call(&token, pb::ListTierProgramsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .programs;
    assert_eq!(listed.len(), 1);
    let program = &listed[0];
    assert_eq!(program.name, "club");
    assert_eq!(program.retain_days, 10);
    assert_eq!(program.downgrade(), pb::TierDowngrade::OneLevel);
    assert_eq!(program.measure(), pb::TierMeasure::Orders);
    assert!(program.currency.is_empty());
    assert_eq!(
        program.tiers,
        tiers(&[("White", 0), ("Black", 2), ("Gold", 4)])
    );
}

#[tokio::test]
async fn tiers_need_their_scopes() {
    let suite = Suite::start().await;
    let mut client = suite.segmentation.client(TiersClient::new);
    let reader = suite.token("segmentation", &[Scope::SegmentsRead]);
    let denied = client
        .define_tier_program(call(
            &reader,
            pb::DefineTierProgramRequest {
                program: Some(club("club", pb::TierDowngrade::OneLevel)),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    let other = suite.token("segmentation", &[Scope::PrivacyExecute]);
    let denied = client
        .list_tier_programs(call(&other, pb::ListTierProgramsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let denied = client
        .get_tier(call(
            &other,
            pb::GetTierRequest {
                program: "club".to_owned(),
                subject_id: uuid::Uuid::now_v7().to_string(),
                as_of: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // The reader may read.
    let listed = client
        .list_tier_programs(call(&reader, pb::ListTierProgramsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.programs.is_empty());
}

#[tokio::test]
async fn export_includes_the_tier_in_every_program() {
    let suite = Suite::start().await;
    suite
        .define_program(club("club", pb::TierDowngrade::OneLevel))
        .await
        .unwrap();
    suite
        .define_program(club("club-direct", pb::TierDowngrade::ToQualified))
        .await
        .unwrap();
    let eve = suite.customer("eve@example.com").await;
    // Two orders yesterday: Black now in both programs.
    let yesterday = chrono::Utc::now() - chrono::TimeDelta::days(1);
    suite
        .record(
            (0..2)
                .map(|i| {
                    let mut o = order(&eve, &format!("E-{i}"), 1, 5_000, "EUR");
                    o.occurred_at = Some(prost_types::Timestamp {
                        seconds: yesterday.timestamp() + i,
                        nanos: 0,
                    });
                    o
                })
                .collect(),
        )
        .await;
    suite
        .aggregates_until(&eve, |a| a.is_some_and(|a| a["orders"] == 2))
        .await;

    let exported = suite.exported(&eve).await;
    let tiers: Vec<&serde_json::Value> = exported
        .iter()
        .filter(|(category, _)| category == "segmentation.tiers")
        .map(|(_, document)| document)
        .collect();
    assert_eq!(tiers.len(), 2);
    for (document, program) in tiers.iter().zip(["club", "club-direct"]) {
        assert_eq!(document["program"], program);
        assert_eq!(document["tier"], "Black");
        assert_eq!(document["tier_index"], 1);
        assert_eq!(document["measure"], 2);
        assert_eq!(document["restricted"], false);
        assert!(document["next_change_at"].is_string());
        assert_eq!(document["next_change_tier"], "White");
    }
    let now = suite.standing("club", &eve, None).await;
    assert_eq!(now.tier, "Black");

    // Restricted: still exported, with no tier computed.
    suite.restrict(&eve).await;
    let exported = suite.exported(&eve).await;
    let restricted: Vec<&serde_json::Value> = exported
        .iter()
        .filter(|(category, _)| category == "segmentation.tiers")
        .map(|(_, document)| document)
        .collect();
    assert_eq!(restricted.len(), 2);
    assert!(
        restricted
            .iter()
            .all(|d| d["restricted"] == true && d["tier"].is_null())
    );
}
