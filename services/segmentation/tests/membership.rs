//! Maintained segment membership through the running services: populating a new segment,
//! member lists, the stream of joins and leaves as orders, restrictions, erasures and time
//! change who is in.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::Duration;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use support::*;
use tonic::Streaming;

impl Suite {
    async fn members(
        &self,
        segment: &str,
        page: Option<common::PageRequest>,
    ) -> Result<pb::GetMembersResponse, tonic::Status> {
        let (mut client, token) = self.segments();
        client
            .get_members(call(
                &token,
                pb::GetMembersRequest {
                    segment: segment.to_owned(),
                    page,
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn watch(
        &self,
        cursor: &str,
        segments: &[&str],
    ) -> Result<Streaming<pb::WatchMembershipResponse>, tonic::Status> {
        let (mut client, token) = self.segments();
        client
            .watch_membership(call(
                &token,
                pb::WatchMembershipRequest {
                    cursor: cursor.to_owned(),
                    segments: segments.iter().map(|s| (*s).to_owned()).collect(),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn restrict(&self, subject: &str, restricted: bool) {
        self.segmentation
            .client(PersonalDataClient::new)
            .restrict(call(
                &self.token("segmentation", &[Scope::PrivacyExecute]),
                privacy::RestrictRequest {
                    subject_id: subject.to_owned(),
                    request_id: uuid::Uuid::now_v7().to_string(),
                    restricted,
                },
            ))
            .await
            .unwrap();
    }
}

/// The next change on the stream: (subject, joined, reason).
async fn next(
    stream: &mut Streaming<pb::WatchMembershipResponse>,
) -> (String, bool, pb::MembershipReason) {
    let message = tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .expect("a membership change within 15 s")
        .unwrap()
        .unwrap();
    assert!(!message.cursor.is_empty());
    let change = message.change.unwrap();
    let reason = change.reason();
    (change.subject_id, change.joined, reason)
}

fn subjects(page: &pb::GetMembersResponse) -> Vec<String> {
    page.members.iter().map(|m| m.subject_id.clone()).collect()
}

#[tokio::test]
async fn members_follow_orders_restrictions_and_erasure_and_watchers_see_each_change() {
    let suite = Suite::start().await;
    let ada = suite.customer("ada@example.com").await;
    let bo = suite.customer("bo@example.com").await;
    // Bo buys before the segment exists: populating it finds him.
    suite.record(vec![order(&bo, "B-1", 5, 9_000, "EUR")]).await;
    suite
        .aggregates_until(&bo, |a| a.is_some_and(|a| a["orders"] == 1))
        .await;
    suite.define_populated("buyers", "orders >= 1").await;
    suite.define_populated("big", "spend > 1000").await;

    let first = suite.members("buyers", None).await.unwrap();
    assert_eq!(subjects(&first), [bo.as_str()]);
    assert_eq!(first.total, 1);
    assert!(first.page.unwrap().next_page_token.is_empty());

    // From the list's cursor on, a watcher sees what changes after it, of its segment only.
    let mut watch = suite.watch(&first.cursor, &["buyers"]).await.unwrap();
    suite
        .record(vec![order(&ada, "A-1", 6, 2_000, "EUR")])
        .await;
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), true, pb::MembershipReason::Evaluated)
    );

    // Pages in subject order.
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = suite
            .members(
                "buyers",
                Some(common::PageRequest {
                    page_size: 1,
                    page_token: token,
                }),
            )
            .await
            .unwrap();
        assert_eq!(page.total, 2);
        listed.extend(subjects(&page));
        token = page.page.unwrap().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let mut expected = vec![ada.clone(), bo.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // A restriction takes Ada out of every segment; lifting it brings her back.
    suite.restrict(&ada, true).await;
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), false, pb::MembershipReason::Restricted)
    );
    assert_eq!(
        subjects(&suite.members("buyers", None).await.unwrap()),
        [bo.as_str()]
    );
    suite.restrict(&ada, false).await;
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), true, pb::MembershipReason::Evaluated)
    );

    // The export lists the segment with the reasons.
    let exported = suite.exported(&ada).await;
    let membership = exported
        .iter()
        .find(|(category, _)| category == "segmentation.memberships")
        .map(|(_, document)| document.clone())
        .unwrap();
    assert_eq!(membership["segment"], "buyers");
    assert_eq!(membership["conditions"][0]["condition"], "orders >= 1");
    assert_eq!(membership["conditions"][0]["value"], "1");
    assert_eq!(membership["conditions"][0]["result"], true);

    // Erased at profiles: out of every segment, with only the leave left to say so.
    let erased = suite
        .at_profiles(async |mut client, token| {
            client
                .erase(call(
                    &token,
                    privacy::EraseRequest {
                        subject_id: bo.clone(),
                        request_id: uuid::Uuid::now_v7().to_string(),
                    },
                ))
                .await
        })
        .await;
    erased.unwrap();
    assert_eq!(
        next(&mut watch).await,
        (bo.clone(), false, pb::MembershipReason::Erased)
    );
    assert_eq!(
        subjects(&suite.members("buyers", None).await.unwrap()),
        [ada.as_str()]
    );
    assert!(suite.exported(&bo).await.is_empty());
    let mut replay = suite.watch("", &[]).await.unwrap();
    let mut bo_seen = Vec::new();
    loop {
        let change = tokio::time::timeout(Duration::from_millis(500), replay.message()).await;
        let Ok(Ok(Some(message))) = change else { break };
        let change = message.change.unwrap();
        if change.subject_id == bo {
            let reason = change.reason();
            bo_seen.push((change.joined, reason));
        }
    }
    assert_eq!(bo_seen, [(false, pb::MembershipReason::Erased)]);
}

#[tokio::test]
async fn a_customer_leaves_when_an_order_leaves_the_window_without_anything_else_happening() {
    let suite = Suite::start().await;
    suite.define_populated("recent", "orders_30d >= 1").await;
    let ada = suite.customer("ada@example.com").await;
    let mut watch = suite.watch("", &["recent"]).await.unwrap();
    // An order placed 30 days ago less three seconds: in the window for three more seconds.
    let placed = chrono::Utc::now() - chrono::TimeDelta::days(30) + chrono::TimeDelta::seconds(3);
    suite
        .record(vec![profiles::Interaction {
            occurred_at: Some(prost_types::Timestamp {
                seconds: placed.timestamp(),
                nanos: 0,
            }),
            ..order(&ada, "A-1", 1, 2_000, "EUR")
        }])
        .await;
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), true, pb::MembershipReason::Evaluated)
    );
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), false, pb::MembershipReason::Evaluated)
    );
    assert!(
        chrono::Utc::now() >= placed + chrono::TimeDelta::days(30),
        "left only once the order was out of the window"
    );
    assert!(subjects(&suite.members("recent", None).await.unwrap()).is_empty());
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let suite = Suite::start().await;
    suite.define_populated("buyers", "orders >= 1").await;
    let unknown = suite.members("nobody", None).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let too_big = suite
        .members(
            "buyers",
            Some(common::PageRequest {
                page_size: 501,
                page_token: String::new(),
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), tonic::Code::InvalidArgument);
    assert!(too_big.message().contains("page.page_size"));
    let cursor = suite.watch("not a cursor", &[]).await.unwrap_err();
    assert_eq!(cursor.code(), tonic::Code::InvalidArgument);
    assert!(cursor.message().contains("cursor"));
    let name = suite.watch("", &["buyers", "Bad Name"]).await.unwrap_err();
    assert_eq!(name.code(), tonic::Code::InvalidArgument);
    assert!(name.message().contains("segments[1]"));

    // Members are read with segments.read, and nothing else will do.
    let (mut client, _) = suite.segments();
    let denied = client
        .get_members(call(
            &suite.token("segmentation", &[Scope::ProfilesRead]),
            pb::GetMembersRequest {
                segment: "buyers".to_owned(),
                page: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn a_watcher_resuming_from_before_the_history_kept_is_told_to_read_the_members_again() {
    let suite = Suite::start().await;
    suite.define_populated("buyers", "orders >= 1").await;
    let (ada, bo) = (
        suite.customer("ada@example.com").await,
        suite.customer("bo@example.com").await,
    );
    let mut watch = suite.watch("", &["buyers"]).await.unwrap();
    suite.record(vec![order(&bo, "B-1", 5, 2_000, "EUR")]).await;
    next(&mut watch).await;
    let before = suite.members("buyers", None).await.unwrap().cursor;
    suite
        .record(vec![order(&ada, "A-1", 6, 2_000, "EUR")])
        .await;
    next(&mut watch).await;
    let after = suite.members("buyers", None).await.unwrap().cursor;
    // The history is pruned up to Ada's join, as it is after 30 days.
    suite.sql(
        "INSERT INTO segmentation.membership_horizon (tx, seq) \
         SELECT tx, seq FROM segmentation.membership_events ORDER BY tx DESC, seq DESC LIMIT 1",
    );
    let stale = suite.watch(&before, &["buyers"]).await.unwrap_err();
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
    assert!(
        stale.message().contains("GetMembers"),
        "{}",
        stale.message()
    );
    // From the list's cursor, or from the oldest held, watching goes on.
    suite.watch(&after, &["buyers"]).await.unwrap();
    suite.watch("", &["buyers"]).await.unwrap();
}
