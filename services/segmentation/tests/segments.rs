//! Rule segments through the running service: defining them, and membership with its reasons.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use support::*;

impl Suite {
    async fn define(
        &self,
        name: &str,
        rule: &str,
    ) -> Result<pb::DefineSegmentResponse, tonic::Status> {
        let (mut client, token) = self.segments();
        client
            .define_segment(call(
                &token,
                pb::DefineSegmentRequest {
                    segment: Some(pb::Segment {
                        name: name.to_owned(),
                        description: format!("{name}, for the tests"),
                        rule: rule.to_owned(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn explain(&self, segment: &str, subject: &str) -> pb::ExplainMembershipResponse {
        let (mut client, token) = self.segments();
        client
            .explain_membership(call(
                &token,
                pb::ExplainMembershipRequest {
                    segment: segment.to_owned(),
                    subject_id: subject.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }
}

#[tokio::test]
async fn membership_follows_the_rule_and_says_why() {
    let suite = Suite::start().await;
    let defined = suite
        .define(
            "recent-buyers",
            r#"orders_90d >= 2 and spend > 50 and not (rfm.segment == "Lost")"#,
        )
        .await
        .unwrap();
    assert!(defined.created);
    let segment = defined.segment.unwrap();
    assert_eq!(segment.fields, ["orders_90d", "rfm.segment", "spend"]);

    let ada = suite.customer("ada@example.com").await;
    let bo = suite.customer("bo@example.com").await;
    // Dated October 2026: within the last 90 days while the clock says so, and the
    // expectations below follow the clock.
    suite
        .record(vec![
            order(&ada, "A-1", 3, 4_000, "EUR"),
            order(&ada, "A-2", 10, 2_000, "EUR"),
            order(&bo, "B-1", 5, 9_000, "EUR"),
        ])
        .await;
    suite
        .aggregates_until(&ada, |a| a.is_some_and(|a| a["orders"] == 2))
        .await;
    suite
        .aggregates_until(&bo, |a| a.is_some_and(|a| a["orders"] == 1))
        .await;

    let now = chrono::Utc::now().date_naive();
    let window_holds =
        (now - chrono::NaiveDate::from_ymd_opt(2026, 10, 3).unwrap()).num_days() < 90;
    let ada_in = suite.explain("recent-buyers", &ada).await;
    let seen: Vec<(&str, &str, bool)> = ada_in
        .conditions
        .iter()
        .map(|c| (c.condition.as_str(), c.value.as_str(), c.result))
        .collect();
    let recent = if window_holds { "2" } else { "0" };
    assert_eq!(
        seen,
        [
            ("orders_90d >= 2", recent, window_holds),
            ("spend > 50", "60", true),
            // No RFM computed: no fact, so the condition is false and `not` makes it true.
            (r#"rfm.segment == "Lost""#, "", false),
        ]
    );
    assert_eq!(ada_in.member, window_holds);
    assert!(!ada_in.restricted);

    let bo_in = suite.explain("recent-buyers", &bo).await;
    assert!(!bo_in.member);
    assert!(!bo_in.conditions[0].result);
    assert_eq!(bo_in.conditions[1].value, "90");

    let (mut client, token) = suite.segments();
    let member = client
        .is_member(call(
            &token,
            pb::IsMemberRequest {
                segment: "recent-buyers".to_owned(),
                subject_id: ada.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(member.member, window_holds);

    // A restricted customer is in no segment, and its facts are not read.
    suite
        .segmentation
        .client(PersonalDataClient::new)
        .restrict(call(
            &suite.token("segmentation", &[Scope::PrivacyExecute]),
            privacy::RestrictRequest {
                subject_id: ada.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
                restricted: true,
            },
        ))
        .await
        .unwrap();
    let restricted = suite.explain("recent-buyers", &ada).await;
    assert!(restricted.restricted && !restricted.member);
    assert!(restricted.conditions.is_empty());

    // Someone the projection does not know has no facts: nothing holds.
    let stranger = suite
        .explain("recent-buyers", &uuid::Uuid::now_v7().to_string())
        .await;
    assert!(!stranger.member);
    assert!(stranger.conditions.iter().all(|c| c.value.is_empty()));
}

#[tokio::test]
async fn definitions_are_checked_and_named_once() {
    let suite = Suite::start().await;
    suite.define("big-spenders", "spend >= 500").await.unwrap();
    let again = suite.define("big-spenders", "spend >= 500").await.unwrap();
    assert!(!again.created);
    let other = suite
        .define("big-spenders", "spend >= 600")
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::AlreadyExists);

    let cases = [
        ("bad", "orders_90d >=", "invalid segment.rule: at column 14"),
        (
            "bad",
            "city == \"Paris\"",
            "invalid segment.rule: at column 1: unknown field",
        ),
        (
            "bad",
            "custom.tier.level == \"1\"",
            "invalid segment.rule: at column 1: unknown field",
        ),
        // Profile attributes are text: no ordering, no numbers.
        (
            "bad",
            "country > \"FR\"",
            "invalid segment.rule: at column 9",
        ),
        (
            "bad",
            "custom.shoe_size >= 42",
            "invalid segment.rule: at column 18",
        ),
        (
            "bad",
            "spend > \"a lot\"",
            "invalid segment.rule: at column 9",
        ),
        ("Bad Name", "spend > 1", "invalid segment.name:"),
    ];
    for (name, rule, expected) in cases {
        let status = suite.define(name, rule).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{rule}");
        assert!(
            status.message().starts_with(expected),
            "{rule}: {}",
            status.message()
        );
    }

    let (mut client, token) = suite.segments();
    let listed = client
        .list_segments(call(&token, pb::ListSegmentsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .segments;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].rule, "spend >= 500");

    let missing = client
        .is_member(call(
            &token,
            pb::IsMemberRequest {
                segment: "nobody".to_owned(),
                subject_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let reader = suite.token("segmentation", &[Scope::SegmentsRead]);
    let denied = client
        .define_segment(call(
            &reader,
            pb::DefineSegmentRequest {
                segment: Some(pb::Segment {
                    name: "x".to_owned(),
                    rule: "spend > 1".to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}
