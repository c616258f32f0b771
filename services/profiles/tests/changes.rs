//! The change feed through the running service.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::Duration;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_testkit::TokenSpec;
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

fn lines(summary: &pb::InteractionSummary) -> Vec<(&str, &str, u32)> {
    summary
        .products
        .iter()
        .map(|p| (p.product_id.as_str(), p.category.as_str(), p.quantity))
        .collect()
}

#[tokio::test]
async fn interaction_summaries_carry_products_and_survey_scores_even_after_a_merge() {
    use pb::interaction::Details;
    let harness = Harness::start().await;
    let a = harness.upsert_email("a@example.com", "A").await.subject_id;
    let b = harness.upsert_email("b@example.com", "B").await.subject_id;
    let view = Details::ProductView(pb::ProductView {
        product_id: "tent-2p".to_owned(),
        category: "camping".to_owned(),
    });
    let survey = |satisfaction, nps| {
        Details::SurveyAnswer(pb::SurveyAnswer {
            survey_id: "after-delivery".to_owned(),
            satisfaction,
            nps,
            comment: "secret comment".to_owned(),
        })
    };
    record(
        &harness,
        &harness.internal(),
        vec![vec![
            order("e-1", &a, "o-1", 1250, "EUR"),
            interaction("e-2", &a, view),
            interaction("e-3", &a, survey(4, Some(9))),
            interaction("e-4", &b, survey(2, None)),
            interaction(
                "e-5",
                &b,
                Details::PageView(pb::PageView {
                    url: "https://shop.example/".to_owned(),
                    referrer: String::new(),
                }),
            ),
        ]],
    )
    .await
    .unwrap();
    // B's answer is now sealed with A's key: the feed opens it with the holder's key.
    harness
        .profiles()
        .merge_profiles(call(
            &harness.internal(),
            pb::MergeProfilesRequest {
                subject_id: a.clone(),
                merged_subject_id: b.clone(),
                reason: "same customer".to_owned(),
            },
        ))
        .await
        .unwrap();

    let changes = watch(&harness, "", 8).await;
    let summaries: Vec<&pb::InteractionSummary> = changes
        .iter()
        .filter_map(|c| c.interaction.as_ref())
        .collect();
    assert_eq!(summaries.len(), 5);
    let kinds: Vec<i32> = summaries.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            pb::InteractionKind::Order as i32,
            pb::InteractionKind::ProductView as i32,
            pb::InteractionKind::SurveyAnswer as i32,
            pb::InteractionKind::SurveyAnswer as i32,
            pb::InteractionKind::PageView as i32,
        ]
    );
    assert_eq!(lines(summaries[0]), [("sku-1", "shoes", 1)]);
    assert_eq!(lines(summaries[1]), [("tent-2p", "camping", 1)]);
    assert_eq!((summaries[2].satisfaction, summaries[2].nps), (4, Some(9)));
    assert!(summaries[2].products.is_empty());
    assert_eq!((summaries[3].satisfaction, summaries[3].nps), (2, None));
    assert!(summaries[4].products.is_empty());
    assert_eq!((summaries[4].satisfaction, summaries[4].nps), (0, None));
    // Scores and products, never the free text of the payload.
    let encoded = format!("{changes:?}");
    assert!(!encoded.contains("secret comment") && !encoded.contains("shop.example"));
}

/// The next change on `stream`, within 10 s.
async fn next_change(stream: &mut tonic::Streaming<pb::WatchChangesResponse>) -> pb::Change {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a change within 10 s")
        .unwrap()
        .unwrap()
        .change
        .unwrap()
}

#[tokio::test]
async fn created_and_updated_changes_carry_country_locale_and_custom_attributes_and_never_a_name() {
    use pb::attribute_value::Value;
    let harness = Harness::start().await;
    let token = harness.internal();
    for (key, kind) in [
        ("tier", pb::AttributeType::String),
        ("shoe_size", pb::AttributeType::Number),
    ] {
        harness
            .profiles()
            .define_attribute(call(
                &token,
                pb::DefineAttributeRequest {
                    definition: Some(pb::AttributeDefinition {
                        key: key.to_owned(),
                        r#type: kind.into(),
                        description: String::new(),
                    }),
                },
            ))
            .await
            .unwrap();
    }
    let mut stream = harness
        .profiles()
        .watch_changes(call(&token, pb::WatchChangesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let custom = |pairs: &[(&str, Value)]| {
        pairs
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    pb::AttributeValue {
                        value: Some(value.clone()),
                    },
                )
            })
            .collect::<std::collections::HashMap<_, _>>()
    };
    let profile = harness
        .profiles()
        .upsert_profile(call(
            &token,
            pb::UpsertProfileRequest {
                identifiers: vec![new_identifier(email_id("camille@example.com"))],
                attributes: Some(pb::ProfileAttributes {
                    given_name: "Camille".to_owned(),
                    family_name: "Durandeau".to_owned(),
                    birth_date: Some(pb::CalendarDate {
                        year: 1987,
                        month: 6,
                        day: 14,
                    }),
                    locale: "fr-FR".to_owned(),
                    country: "FR".to_owned(),
                    timezone: "Europe/Paris".to_owned(),
                    postal_address: Some(pb::PostalAddress {
                        lines: vec!["12 rue des Lilas".to_owned()],
                        locality: "Lyon".to_owned(),
                        postal_code: "69003".to_owned(),
                        country: "FR".to_owned(),
                        ..Default::default()
                    }),
                    custom: custom(&[
                        ("tier", Value::StringValue("gold".to_owned())),
                        ("shoe_size", Value::NumberValue(42.0)),
                    ]),
                }),
                source: "web_shop".to_owned(),
                merge_if_needed: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let created = next_change(&mut stream).await;
    assert_eq!(created.kind, pb::ChangeKind::Created as i32);
    assert_eq!(created.subject_id, profile.subject_id);
    assert_eq!(
        (created.country.as_str(), created.locale.as_str()),
        ("FR", "fr-FR")
    );
    assert_eq!(
        created.custom,
        custom(&[
            ("tier", Value::StringValue("gold".to_owned())),
            ("shoe_size", Value::NumberValue(42.0)),
        ])
    );

    // Moving to Germany and dropping the tier: an updated change with the values of now.
    harness
        .profiles()
        .update_profile(call(
            &token,
            pb::UpdateProfileRequest {
                subject_id: profile.subject_id.clone(),
                attributes: Some(pb::ProfileAttributes {
                    country: "DE".to_owned(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["country".to_owned(), "custom.tier".to_owned()],
                }),
                source: "crm".to_owned(),
            },
        ))
        .await
        .unwrap();
    let updated = next_change(&mut stream).await;
    assert_eq!(updated.kind, pb::ChangeKind::Updated as i32);
    assert_eq!(updated.subject_id, profile.subject_id);
    assert_eq!(
        (updated.country.as_str(), updated.locale.as_str()),
        ("DE", "fr-FR")
    );
    assert_eq!(
        updated.custom,
        custom(&[("shoe_size", Value::NumberValue(42.0))])
    );

    // Read again from the start, the created change has today's values too.
    let replayed = watch(&harness, "", 2).await;
    assert_eq!(replayed[0].kind, pb::ChangeKind::Created as i32);
    assert_eq!(replayed[0].country, "DE");
    let encoded = format!("{created:?} {updated:?} {replayed:?}");
    for personal in [
        "camille@example.com",
        "Camille",
        "Durandeau",
        "1987",
        "Lilas",
        "Lyon",
        "69003",
        "Europe/Paris",
    ] {
        assert!(!encoded.contains(personal), "{personal} in {encoded}");
    }
}

#[tokio::test]
async fn a_merged_or_erased_profile_has_no_attributes_in_the_feed() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let upsert = |email: &str, country: &str| pb::UpsertProfileRequest {
        identifiers: vec![new_identifier(email_id(email))],
        attributes: Some(pb::ProfileAttributes {
            country: country.to_owned(),
            locale: "fr-FR".to_owned(),
            ..Default::default()
        }),
        source: "web_shop".to_owned(),
        merge_if_needed: false,
    };
    let mut ids = Vec::new();
    for (email, country) in [("kept@example.com", ""), ("merged@example.com", "FR")] {
        ids.push(
            harness
                .profiles()
                .upsert_profile(call(&token, upsert(email, country)))
                .await
                .unwrap()
                .into_inner()
                .profile
                .unwrap()
                .subject_id,
        );
    }
    let (kept, merged) = (ids[0].clone(), ids[1].clone());
    assert_eq!(watch(&harness, "", 2).await[1].country, "FR");
    harness
        .profiles()
        .merge_profiles(call(
            &token,
            pb::MergeProfilesRequest {
                subject_id: kept.clone(),
                merged_subject_id: merged.clone(),
                reason: "same customer".to_owned(),
            },
        ))
        .await
        .unwrap();
    let changes = watch(&harness, "", 3).await;
    // The merged subject's attributes are the survivor's now, which lacked a country.
    assert_eq!(changes[0].subject_id, kept);
    assert_eq!(
        (changes[0].country.as_str(), changes[0].locale.as_str()),
        ("FR", "fr-FR")
    );
    assert_eq!(changes[1].subject_id, merged);
    assert!(changes[1].country.is_empty() && changes[1].locale.is_empty());
    assert_eq!(changes[2].kind, pb::ChangeKind::Merged as i32);

    harness
        .personal_data()
        .erase(call(
            &harness.orchestrator(),
            ecrm_proto::ecrm::privacy::v1::EraseRequest {
                subject_id: kept.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap();
    // Erasure deletes the subject's earlier changes: only the erasure is left, bare.
    let changes = watch(&harness, "", 1).await;
    assert_eq!(changes[0].kind, pb::ChangeKind::Erased as i32);
    assert!(changes[0].country.is_empty() && changes[0].custom.is_empty());
}

#[tokio::test]
async fn partners_cannot_watch_the_feed() {
    let harness = Harness::start().await;
    let status = harness
        .profiles()
        .watch_changes(call(
            &harness.partner("air-partner"),
            pb::WatchChangesRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let token = harness.token(TokenSpec::internal(
        "profiles",
        scopes(&[Scope::ProfilesWrite, Scope::EventsWrite]),
    ));
    let status = harness
        .profiles()
        .watch_changes(call(&token, pb::WatchChangesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}
