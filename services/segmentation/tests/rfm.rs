//! RFM through the running service, against a fixture computed by hand.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::rfm_client::RfmClient;
use support::*;

fn on(year: i32, month: u32, day: u32) -> Option<prost_types::Timestamp> {
    let time = chrono::NaiveDate::from_ymd_opt(year, month, day)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    Some(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: 0,
    })
}

/// `count` orders of 100.00 EUR each, the last on `last`, the others a day apart before it.
fn orders(
    subject: &str,
    name: &str,
    count: u32,
    last: (i32, u32, u32),
) -> Vec<profiles::Interaction> {
    let last = chrono::NaiveDate::from_ymd_opt(last.0, last.1, last.2).unwrap();
    (0..count)
        .map(|i| {
            let day = last - chrono::Days::new(u64::from(i));
            let mut interaction = order(subject, &format!("{name}-{i}"), 1, 10_000, "EUR");
            interaction.occurred_at = on(
                chrono::Datelike::year(&day),
                chrono::Datelike::month(&day),
                chrono::Datelike::day(&day),
            );
            interaction
        })
        .collect()
}

impl Suite {
    fn rfm(&self) -> (RfmClient<tonic::transport::Channel>, String) {
        (
            self.segmentation.client(RfmClient::new),
            self.token("segmentation", &[Scope::SegmentsRead, Scope::SegmentsWrite]),
        )
    }

    /// Computes as of 31 October 2026 and waits for the job to finish.
    async fn compute(&self, bins: u32) -> pb::RfmJob {
        self.compute_rfm(pb::ComputeRfmRequest {
            as_of: on(2026, 10, 31),
            window_days: 365,
            bins,
            currency: String::new(),
        })
        .await
    }
}

#[tokio::test]
async fn scores_and_segments_match_the_hand_computed_fixture() {
    let suite = Suite::start().await;
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut subjects = std::collections::HashMap::new();
    for name in names {
        subjects.insert(name, suite.customer(&format!("{name}@example.com")).await);
    }
    let s = |name: &str| subjects[name].clone();
    // As of 31 October 2026, over 365 days (from 1 November 2025):
    //   a: 5 orders, last 1 day before; b: 4, 11 days; c and f: 3, 30 days (the same);
    //   d: 2, 152 days; e: 1, 334 days; g: restricted; h: only before the window.
    let mut batch = Vec::new();
    batch.extend(orders(&s("a"), "a", 5, (2026, 10, 30)));
    batch.extend(orders(&s("b"), "b", 4, (2026, 10, 20)));
    batch.extend(orders(&s("c"), "c", 3, (2026, 10, 1)));
    batch.extend(orders(&s("f"), "f", 3, (2026, 10, 1)));
    batch.extend(orders(&s("d"), "d", 2, (2026, 6, 1)));
    batch.extend(orders(&s("e"), "e", 1, (2025, 12, 1)));
    batch.extend(orders(&s("g"), "g", 5, (2026, 10, 30)));
    batch.extend(orders(&s("h"), "h", 2, (2025, 10, 20)));
    suite.record(batch).await;
    let mut restrict = suite.segmentation.client(PersonalDataClient::new);
    restrict
        .restrict(call(
            &suite.token("segmentation", &[Scope::PrivacyExecute]),
            privacy::RestrictRequest {
                subject_id: s("g"),
                request_id: uuid::Uuid::now_v7().to_string(),
                restricted: true,
            },
        ))
        .await
        .unwrap();
    for (name, count) in [("a", 5), ("e", 1), ("g", 5), ("h", 2)] {
        suite
            .aggregates_until(&s(name), |a| a.is_some_and(|a| a["orders"] == count))
            .await;
    }

    let job = suite.compute(5).await;
    assert_eq!(job.customers, 6);
    assert_eq!((job.steps_done, job.steps_total), (2, 2));
    // n = 6. Recency ranks (larger is worse, first): e 1, d 2, c and f 3, b 5, a 6; a score
    // is 1 + floor((rank - 1) * 5 / 6). Frequency and monetary rank the same way.
    let expected = [
        ("a", 1, 5, 50_000, 5, "Champions"),
        ("b", 11, 4, 40_000, 4, "Loyal"),
        ("c", 30, 3, 30_000, 2, "Hibernating"),
        ("f", 30, 3, 30_000, 2, "Hibernating"),
        ("d", 152, 2, 20_000, 1, "Lost"),
        ("e", 334, 1, 10_000, 1, "Lost"),
    ];
    for (name, recency, frequency, monetary, score, segment) in expected {
        let got = suite.rfm_score(&s(name)).await.unwrap();
        assert_eq!(
            (got.recency_days, got.frequency, got.monetary_minor),
            (recency, frequency, monetary),
            "{name}"
        );
        assert_eq!((got.r, got.f, got.m), (score, score, score), "{name}");
        assert_eq!(got.segment, segment, "{name}");
        assert_eq!(got.currency, "EUR");
        assert_eq!(got.job_id, job.job_id);
    }
    for name in ["g", "h"] {
        let status = suite.rfm_score(&s(name)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{name}");
    }

    let (mut client, token) = suite.rfm();
    let summary = client
        .rfm_summary(call(&token, pb::RfmSummaryRequest {}))
        .await
        .unwrap()
        .into_inner();
    let sizes: Vec<(&str, u64, i64)> = summary
        .segments
        .iter()
        .filter(|s| s.customers > 0)
        .map(|s| (s.segment.as_str(), s.customers, s.monetary_minor))
        .collect();
    assert_eq!(
        sizes,
        [
            ("Champions", 1, 50_000),
            ("Loyal", 1, 40_000),
            ("Hibernating", 2, 60_000),
            ("Lost", 2, 30_000),
        ]
    );
    assert_eq!(summary.segments.len(), 11);

    // On 10 levels the same ranks spread wider: 1 + floor((rank - 1) * 10 / 6).
    suite.compute(10).await;
    let a = suite.rfm_score(&s("a")).await.unwrap();
    assert_eq!((a.r, a.segment.as_str()), (9, "Champions"));
    let c = suite.rfm_score(&s("c")).await.unwrap();
    assert_eq!(c.r, 4);
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_the_field() {
    let suite = Suite::start().await;
    let (mut client, token) = suite.rfm();
    let cases = [
        (
            pb::ComputeRfmRequest {
                bins: 11,
                ..Default::default()
            },
            "bins",
        ),
        (
            pb::ComputeRfmRequest {
                window_days: 4000,
                ..Default::default()
            },
            "window_days",
        ),
        (
            pb::ComputeRfmRequest {
                currency: "GBP".to_owned(),
                ..Default::default()
            },
            "currency",
        ),
        (
            pb::ComputeRfmRequest {
                currency: "pounds".to_owned(),
                ..Default::default()
            },
            "currency",
        ),
    ];
    for (request, field) in cases {
        let status = client.compute_rfm(call(&token, request)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            status.message().starts_with(&format!("invalid {field}:")),
            "{field}: {}",
            status.message()
        );
    }
    // Nothing computed yet.
    let none = client
        .rfm_summary(call(&token, pb::RfmSummaryRequest {}))
        .await
        .unwrap_err();
    assert_eq!(none.code(), tonic::Code::NotFound);
    // Reading needs segments.read; computing needs segments.write.
    let reader = suite.token("segmentation", &[Scope::SegmentsRead]);
    let denied = client
        .compute_rfm(call(&reader, pb::ComputeRfmRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}
