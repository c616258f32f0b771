//! The change feed through the running service.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::Duration;

use ecrm_proto::ecrm::profiles::v1 as pb;
use futures::StreamExt as _;
use support::*;

/// Reads changes from `cursor` until `count` arrived.
async fn watch(harness: &Harness, cursor: &str, count: usize) -> Vec<pb::Change> {
    let mut stream = harness
        .profiles()
        .watch_changes(call(
            &harness.internal(),
            pb::WatchChangesRequest {
                cursor: cursor.to_owned(),
                kinds: Vec::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut changes = Vec::new();
    while changes.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a change within 10 s")
            .unwrap()
            .unwrap();
        changes.push(next.change.unwrap());
    }
    changes
}

#[tokio::test]
async fn the_feed_resumes_from_a_cursor_after_a_restart_with_no_gap_and_no_duplicate() {
    let mut harness = Harness::start().await;
    let a = harness.upsert_email("a@example.com", "A").await;
    let b = harness.upsert_email("b@example.com", "B").await;
    let first = watch(&harness, "", 2).await;
    assert_eq!(
        first
            .iter()
            .map(|c| (c.kind, c.subject_id.clone()))
            .collect::<Vec<_>>(),
        [
            (pb::ChangeKind::Created as i32, a.subject_id.clone()),
            (pb::ChangeKind::Created as i32, b.subject_id.clone())
        ]
    );
    let cursor = first[1].cursor.clone();

    harness.restart().await;
    let c = harness.upsert_email("c@example.com", "C").await;
    record(
        &harness,
        &harness.internal(),
        vec![vec![order("e-1", &a.subject_id, "o-1", 1250, "EUR")]],
    )
    .await
    .unwrap();
    let resumed = watch(&harness, &cursor, 2).await;
    assert_eq!(resumed[0].kind, pb::ChangeKind::Created as i32);
    assert_eq!(resumed[0].subject_id, c.subject_id);
    assert_eq!(resumed[1].kind, pb::ChangeKind::InteractionRecorded as i32);
    let summary = resumed[1].interaction.as_ref().unwrap();
    assert_eq!(summary.order_id, "o-1");
    assert_eq!(summary.amount.as_ref().unwrap().amount_minor, 1250);
    // Nothing more: no duplicate of what came before the cursor.
    let everything = watch(&harness, "", 4).await;
    assert_eq!(everything[2].cursor, resumed[0].cursor);
}

#[tokio::test]
async fn a_watcher_receives_changes_as_they_are_written_and_carries_no_personal_data() {
    let harness = Harness::start().await;
    let mut stream = harness
        .profiles()
        .watch_changes(call(
            &harness.internal(),
            pb::WatchChangesRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    let profile = harness.upsert_email("live@example.com", "Olivia").await;
    let change = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .change
        .unwrap();
    assert_eq!(change.subject_id, profile.subject_id);
    let encoded = format!("{change:?}");
    assert!(!encoded.contains("live@example.com") && !encoded.contains("Olivia"));
}

#[tokio::test]
async fn a_bad_cursor_is_refused() {
    let harness = Harness::start().await;
    let mut stream = harness
        .profiles()
        .watch_changes(call(
            &harness.internal(),
            pb::WatchChangesRequest {
                cursor: "not-a-cursor".to_owned(),
                kinds: Vec::new(),
            },
        ))
        .await;
    let status = match &mut stream {
        Err(status) => status.clone(),
        Ok(response) => response.get_mut().next().await.unwrap().unwrap_err(),
    };
    assert_eq!(bad_field(&status), "cursor");
}
