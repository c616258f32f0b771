//! `PersonalData` through the running service: export, erasure by crypto-shredding, restriction,
//! and what is stored in clear.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text, Uuid as SqlUuid};
use ecrm_auth::Scope;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_testkit::{TokenSpec, assert_migrations_revert};
use support::*;
use tonic::Code;

#[derive(QueryableByName)]
struct Sealed {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = Bytea)]
    sealed: Vec<u8>,
}

#[derive(QueryableByName)]
struct WrappedKey {
    #[diesel(sql_type = SqlUuid)]
    subject_id: uuid::Uuid,
    #[diesel(sql_type = Bytea)]
    wrapped_key: Vec<u8>,
}

fn survey(event_id: &str, subject_id: &str, comment: &str) -> pb::Interaction {
    pb::Interaction {
        event_id: event_id.to_owned(),
        subject: Some(by_id(subject_id)),
        channel: pb::Channel::Email.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 10,
            nanos: 0,
        }),
        details: Some(pb::interaction::Details::SurveyAnswer(pb::SurveyAnswer {
            survey_id: "nps-2026".to_owned(),
            satisfaction: 4,
            nps: Some(9),
            comment: comment.to_owned(),
        })),
    }
}

async fn erase(harness: &Harness, subject_id: &str, request_id: &str) -> privacy::ErasureReceipt {
    harness
        .personal_data()
        .erase(call(
            &harness.orchestrator(),
            privacy::EraseRequest {
                subject_id: subject_id.to_owned(),
                request_id: request_id.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
}

#[tokio::test]
async fn erasure_empties_the_export_and_no_key_still_held_opens_the_old_ciphertext() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("gone@example.com", "Gwen").await;
    let keep = harness.upsert_email("stays@example.com", "Stan").await;
    let token = harness.internal();
    record(
        &harness,
        &token,
        vec![vec![
            order("o-1", &profile.subject_id, "order-1", 8900, "EUR"),
            survey("s-1", &profile.subject_id, "great service"),
        ]],
    )
    .await
    .unwrap();
    let before = harness.export(&profile.subject_id).await;
    let categories: Vec<&str> = before.iter().map(|(c, _)| c.as_str()).collect();
    for expected in [
        "profile",
        "profile.identifiers",
        "profile.attributes",
        "interactions",
        "access_log",
    ] {
        assert!(
            categories.contains(&expected),
            "{expected} missing from {categories:?}"
        );
    }
    assert!(before.iter().any(|(_, d)| d["value"] == "gone@example.com"));

    // What a backup taken now would hold.
    let subject = uuid::Uuid::parse_str(&profile.subject_id).unwrap();
    let backup: Vec<Sealed> = harness
        .sql(move |conn| {
            diesel::sql_query(
                "SELECT id, sealed_value AS sealed FROM identifiers WHERE subject_id = $1 \
                 UNION ALL SELECT id, sealed_value FROM attribute_values WHERE subject_id = $1 AND sealed_value IS NOT NULL \
                 UNION ALL SELECT id, sealed_payload FROM interactions WHERE subject_id = $1",
            )
            .bind::<SqlUuid, _>(subject)
            .load(conn)
        })
        .await;
    assert_eq!(backup.len(), 4);

    let request_id = uuid::Uuid::now_v7().to_string();
    let receipt = erase(&harness, &profile.subject_id, &request_id).await;
    assert!(!receipt.replayed);
    let erased: u64 = receipt.erased.iter().map(|e| e.count).sum();
    assert!(erased >= 3, "{receipt:?}");
    assert_eq!(receipt.retained.len(), 1);
    assert_eq!(receipt.retained[0].category, "interactions.orders");
    assert_eq!(receipt.retained[0].count, 1);
    assert!(receipt.retained[0].pseudonymised);
    assert!(receipt.retained[0].legal_reason.contains("L123-22"));
    let replay = erase(&harness, &profile.subject_id, &request_id).await;
    assert!(replay.replayed);
    assert_eq!(replay.erased, receipt.erased);

    assert!(harness.export(&profile.subject_id).await.is_empty());
    assert_eq!(
        harness.get(&profile.subject_id).await.unwrap_err().code(),
        Code::NotFound
    );
    // Nothing new can be recorded on the erased subject.
    let refused = record(
        &harness,
        &harness.internal(),
        vec![vec![order(
            "after-1",
            &profile.subject_id,
            "o-9",
            100,
            "EUR",
        )]],
    )
    .await
    .unwrap_err();
    assert_eq!(bad_field(&refused), "interactions[0].subject");
    assert!(!harness.export(&keep.subject_id).await.is_empty());

    // Every key the service still holds, tried on every old ciphertext: none opens.
    let keys: Vec<WrappedKey> = harness
        .sql(|conn| {
            diesel::sql_query("SELECT subject_id, wrapped_key FROM subject_keys").load(conn)
        })
        .await;
    assert!(!keys.iter().any(|k| k.subject_id == subject));
    for key in &keys {
        let data_key = harness
            .master
            .open_data_key(
                format!("profiles.subject_key:{}", key.subject_id).as_bytes(),
                &key.wrapped_key,
            )
            .unwrap();
        for sealed in &backup {
            for table in ["identifier", "attribute", "interaction"] {
                let context = format!("profiles.{table}:{}", sealed.id);
                assert!(data_key.open(context.as_bytes(), &sealed.sealed).is_err());
            }
        }
    }
    // The order's amount stays for the accounts, linked to nobody.
    let kept: Vec<Sealed> = harness
        .sql(|conn| {
            diesel::sql_query(
                "SELECT id, convert_to(order_id || ':' || amount_minor || currency, 'UTF8') AS sealed \
                 FROM interactions WHERE subject_id IS NULL AND sealed_payload IS NULL",
            )
            .load(conn)
        })
        .await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].sealed, b"order-1:8900EUR");
}

#[tokio::test]
async fn a_restricted_subject_is_refused_for_processing_reads_but_still_exported() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("res@example.com", "Rey").await;
    let restrict = |on: bool| privacy::RestrictRequest {
        subject_id: profile.subject_id.clone(),
        request_id: uuid::Uuid::now_v7().to_string(),
        restricted: on,
    };
    let state = harness
        .personal_data()
        .restrict(call(&harness.orchestrator(), restrict(true)))
        .await
        .unwrap()
        .into_inner();
    assert!(state.restricted);
    let get = pb::GetProfileRequest {
        subject: Some(by_id(&profile.subject_id)),
    };
    let token = harness.internal();
    let refused = harness
        .profiles()
        .get_profile(read_for(&token, "marketing", get.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let refused = harness
        .interactions()
        .list_interactions(read_for(
            &token,
            "analytics",
            pb::ListInteractionsRequest {
                subject_id: profile.subject_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let legal = harness
        .profiles()
        .get_profile(read_for(&token, "legal_claims", get.clone()))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert!(legal.restricted);
    assert!(!harness.export(&profile.subject_id).await.is_empty());

    harness
        .personal_data()
        .restrict(call(&harness.orchestrator(), restrict(false)))
        .await
        .unwrap();
    harness
        .profiles()
        .get_profile(read_for(&token, "marketing", get))
        .await
        .unwrap();
}

#[tokio::test]
async fn only_the_request_orchestrator_reaches_personal_data() {
    let harness = Harness::start().await;
    let profile = harness.upsert_email("who@example.com", "Who").await;
    let everything_else = harness.token(TokenSpec::internal(
        "profiles",
        scopes(&[Scope::ProfilesRead, Scope::ProfilesWrite, Scope::DsrManage]),
    ));
    let denied = harness
        .personal_data()
        .erase(call(
            &everything_else,
            privacy::EraseRequest {
                subject_id: profile.subject_id.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let described = harness
        .personal_data()
        .describe(call(&harness.orchestrator(), privacy::DescribeRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.service, "profiles");
    assert!(
        described
            .categories
            .iter()
            .any(|c| c.key == "interactions.orders" && c.retention.is_some())
    );
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
}

#[derive(QueryableByName)]
struct Hits {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    hits: i64,
}

#[tokio::test]
async fn no_column_of_the_schema_holds_a_known_email_or_name_in_clear() {
    let harness = Harness::start().await;
    let email = "plain.text.probe@example.org";
    let name = "Zebulon";
    let profile = harness.upsert_email(email, name).await;
    record(
        &harness,
        &harness.internal(),
        vec![vec![survey(
            "p-1",
            &profile.subject_id,
            &format!("{name} loved it, write to {email}"),
        )]],
    )
    .await
    .unwrap();
    harness
        .profiles()
        .merge_profiles(call(
            &harness.internal(),
            pb::MergeProfilesRequest {
                subject_id: profile.subject_id.clone(),
                merged_subject_id: harness
                    .upsert_email("other@example.org", "Other")
                    .await
                    .subject_id,
                reason: format!("{name} called about {email}"),
            },
        ))
        .await
        .unwrap();
    let columns: Vec<Column> = harness
        .sql(|conn| {
            diesel::sql_query(
                "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = 'profiles' AND data_type IN ('text', 'bytea', 'jsonb', 'ARRAY', 'character varying')",
            )
            .load(conn)
        })
        .await;
    assert!(
        columns.len() >= 20,
        "only {} columns scanned",
        columns.len()
    );
    for column in columns {
        for needle in [email, name, &name.to_lowercase(), "plain.text.probe"] {
            let text = if column.data_type == "bytea" {
                format!("encode(\"{}\", 'escape')", column.column_name)
            } else {
                format!("\"{}\"::text", column.column_name)
            };
            let query = format!(
                "SELECT count(*) AS hits FROM \"{}\" WHERE {text} ILIKE '%' || $1 || '%'",
                column.table_name
            );
            let bound = needle.to_owned();
            let hits: Hits = harness
                .sql(move |conn| {
                    diesel::sql_query(query)
                        .bind::<Text, _>(bound)
                        .get_result(conn)
                })
                .await;
            assert_eq!(
                hits.hits, 0,
                "{}.{} holds {needle:?} in clear",
                column.table_name, column.column_name
            );
        }
    }
}

#[tokio::test]
async fn the_migrations_revert_cleanly() {
    assert_migrations_revert(&ecrm_profiles::SERVICE).await;
}
