//! Interactions through the running service: idempotency, validation, listing.

mod support;

use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::profiles::v1 as pb;
use support::*;

#[tokio::test]
async fn the_same_event_id_twice_is_one_interaction() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("ida@example.com", "Ida").await;
    let token = harness.internal();
    let event = order("evt-42", &profile.subject_id, "o-42", 1999, "EUR");
    let first = record(&harness, &token, vec![vec![event.clone(), event.clone()]])
        .await
        .unwrap();
    assert_eq!((first.recorded, first.duplicates), (1, 1));
    let again = record(&harness, &token, vec![vec![event]]).await.unwrap();
    assert_eq!((again.recorded, again.duplicates), (0, 1));
    let stored = list_interactions(&harness, &profile.subject_id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, pb::InteractionKind::Order as i32);
    let pb::interaction::Details::Order(order) = stored[0]
        .interaction
        .as_ref()
        .unwrap()
        .details
        .clone()
        .unwrap()
    else {
        panic!("not an order");
    };
    assert_eq!(order.total.unwrap().amount_minor, 1999);
}

#[tokio::test]
async fn bad_interactions_are_refused_naming_the_field_and_nothing_of_the_batch_is_stored() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("joe@example.com", "Joe").await;
    let token = harness.internal();
    let good = order("ok-1", &profile.subject_id, "o-1", 500, "EUR");
    let mut bad_currency = order("bad-1", &profile.subject_id, "o-2", 500, "EUR");
    let mut negative = order("bad-2", &profile.subject_id, "o-3", 500, "EUR");
    let mut oversized = good.clone();
    oversized.event_id = "bad-3".to_owned();
    if let Some(pb::interaction::Details::Order(order)) = &mut bad_currency.details {
        order.total = Some(common::Money {
            amount_minor: 500,
            currency: "EURO".to_owned(),
        });
    }
    if let Some(pb::interaction::Details::Order(order)) = &mut negative.details {
        order.total.as_mut().unwrap().amount_minor = -1;
    }
    if let Some(pb::interaction::Details::Order(order)) = &mut oversized.details {
        let item = order.line_items[0].clone();
        order.line_items = vec![
            pb::LineItem {
                product_id: "x".repeat(120),
                ..item
            };
            200
        ];
    }
    let mut bad_email = good.clone();
    bad_email.event_id = "bad-4".to_owned();
    bad_email.subject = Some(by_identifier(email_id("nobody-at-example.com")));
    let cases = [
        (bad_currency, "interactions[1].order.total.currency"),
        (negative, "interactions[1].order.total.amount_minor"),
        (oversized, "interactions[1]"),
        (bad_email, "interactions[1].subject.identifier.value"),
    ];
    for (bad, field) in cases {
        let status = record(&harness, &token, vec![vec![good.clone(), bad]])
            .await
            .unwrap_err();
        assert_eq!(bad_field(&status), field);
    }
    assert!(
        list_interactions(&harness, &profile.subject_id)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn an_unknown_subject_id_is_refused_and_an_unknown_identifier_creates_a_profile() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let ghost = order("g-1", &uuid::Uuid::now_v7().to_string(), "o-1", 100, "EUR");
    let status = record(&harness, &token, vec![vec![ghost]])
        .await
        .unwrap_err();
    assert_eq!(bad_field(&status), "interactions[0].subject");
    let mut by_email = order("n-1", &uuid::Uuid::now_v7().to_string(), "o-2", 100, "EUR");
    by_email.subject = Some(by_identifier(email_id("new@example.com")));
    record(&harness, &token, vec![vec![by_email]])
        .await
        .unwrap();
    let created = harness
        .profiles()
        .get_profile(read(
            &token,
            pb::GetProfileRequest {
                subject: Some(by_identifier(email_id("new@example.com"))),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(
        list_interactions(&harness, &created.subject_id).await.len(),
        1
    );
}

#[tokio::test]
async fn interactions_are_listed_newest_first_by_kind_and_page() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("max@example.com", "Max").await;
    let token = harness.internal();
    let mut batch = Vec::new();
    for i in 0..5_i64 {
        let mut event = order(
            &format!("o-{i}"),
            &profile.subject_id,
            &format!("order-{i}"),
            100 * i,
            "EUR",
        );
        event.occurred_at.as_mut().unwrap().seconds -= 3600 * (5 - i);
        batch.push(event);
    }
    batch.push(pb::Interaction {
        event_id: "v-1".to_owned(),
        subject: Some(by_id(&profile.subject_id)),
        channel: pb::Channel::App.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp(),
            nanos: 0,
        }),
        details: Some(pb::interaction::Details::PageView(pb::PageView {
            url: "https://shop.example/boots".to_owned(),
            referrer: String::new(),
        })),
    });
    record(&harness, &token, vec![batch]).await.unwrap();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = harness
            .interactions()
            .list_interactions(read(
                &token,
                pb::ListInteractionsRequest {
                    subject_id: profile.subject_id.clone(),
                    kinds: vec![pb::InteractionKind::Order.into()],
                    page: Some(common::PageRequest {
                        page_size: 2,
                        page_token: page_token.clone(),
                    }),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(
            page.interactions
                .into_iter()
                .map(|i| i.interaction.unwrap().event_id),
        );
        page_token = page.page.unwrap().next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ["o-4", "o-3", "o-2", "o-1", "o-0"]);
}

/// A survey answer whose comment is `chars` three-byte characters.
fn survey(event_id: &str, subject_id: &str, chars: usize) -> pb::Interaction {
    interaction(
        event_id,
        subject_id,
        pb::interaction::Details::SurveyAnswer(pb::SurveyAnswer {
            survey_id: "nps-2026".to_owned(),
            satisfaction: 4,
            nps: Some(9),
            comment: "€".repeat(chars),
        }),
    )
}

#[tokio::test]
async fn a_full_batch_of_the_largest_interactions_is_taken_in_one_message() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("kim@example.com", "Kim").await;
    let token = harness.internal();
    // 1,000 comments of 4,000 characters, 12,000 bytes each: a 12 MB message, past tonic's
    // 4 MiB default, within what the validators allow.
    let batch: Vec<pb::Interaction> = (0..1000)
        .map(|i| survey(&format!("survey-{i}"), &profile.subject_id, 4000))
        .collect();
    let recorded = record(&harness, &token, vec![batch]).await.unwrap();
    assert_eq!((recorded.recorded, recorded.duplicates), (1000, 0));
}

#[tokio::test]
async fn a_message_past_the_size_bound_is_refused_before_decoding_and_stores_nothing() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("lou@example.com", "Lou").await;
    let token = harness.internal();
    // Within the bound, a comment too long is refused by the validator, naming it.
    let long = record(
        &harness,
        &token,
        vec![vec![survey("long", &profile.subject_id, 4001)]],
    )
    .await
    .unwrap_err();
    assert_eq!(long.code(), tonic::Code::InvalidArgument, "{long:?}");
    assert!(long.message().contains("survey_answer.comment"), "{long:?}");
    // Past it (18 MB), the server refuses the message before decoding it.
    let huge = record(
        &harness,
        &token,
        vec![vec![survey("huge", &profile.subject_id, 6_000_000)]],
    )
    .await
    .unwrap_err();
    assert_eq!(huge.code(), tonic::Code::OutOfRange, "{huge:?}");
    assert!(
        list_interactions(&harness, &profile.subject_id)
            .await
            .is_empty()
    );
}
