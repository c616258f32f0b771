//! Profile attributes in segment rules through the running services: country, locale and
//! custom attributes set at profiles move memberships, and erasure removes them.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::{Duration, Instant};

use ecrm_auth::Scope;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use support::*;
use tonic::Streaming;

impl Suite {
    fn profiles_client(&self) -> (ProfilesClient<tonic::transport::Channel>, String) {
        (
            self.profiles.client(ProfilesClient::new),
            self.token("profiles", &[Scope::ProfilesWrite]),
        )
    }

    async fn members(&self, segment: &str) -> Vec<String> {
        let (mut client, token) = self.segments();
        client
            .get_members(call(
                &token,
                pb::GetMembersRequest {
                    segment: segment.to_owned(),
                    page: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .members
            .into_iter()
            .map(|m| m.subject_id)
            .collect()
    }

    async fn watch(&self, segment: &str) -> Streaming<pb::WatchMembershipResponse> {
        let (mut client, token) = self.segments();
        client
            .watch_membership(call(
                &token,
                pb::WatchMembershipRequest {
                    cursor: String::new(),
                    segments: vec![segment.to_owned()],
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Each condition of the rule for `subject` now: (condition, value, result), and whether
    /// the customer is in.
    async fn explain(&self, segment: &str, subject: &str) -> (Vec<(String, String, bool)>, bool) {
        let (mut client, token) = self.segments();
        let explained = client
            .explain_membership(call(
                &token,
                pb::ExplainMembershipRequest {
                    segment: segment.to_owned(),
                    subject_id: subject.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        (
            explained
                .conditions
                .into_iter()
                .map(|c| (c.condition, c.value, c.result))
                .collect(),
            explained.member,
        )
    }

    async fn define_attribute(&self, key: &str) {
        let (mut client, token) = self.profiles_client();
        client
            .define_attribute(call(
                &token,
                profiles::DefineAttributeRequest {
                    definition: Some(profiles::AttributeDefinition {
                        key: key.to_owned(),
                        r#type: profiles::AttributeType::String.into(),
                        description: String::new(),
                    }),
                },
            ))
            .await
            .unwrap();
    }

    /// A new customer at profiles with these attributes.
    async fn customer_with(&self, email: &str, attributes: profiles::ProfileAttributes) -> String {
        let (mut client, token) = self.profiles_client();
        client
            .upsert_profile(call(
                &token,
                profiles::UpsertProfileRequest {
                    identifiers: vec![profiles::NewIdentifier {
                        identifier: Some(common::Identifier {
                            kind: common::IdentifierKind::Email.into(),
                            value: email.to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    attributes: Some(attributes),
                    source: "web_shop".to_owned(),
                    merge_if_needed: false,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
            .subject_id
    }

    /// Sets (or, absent from `attributes`, clears) the attributes of `paths` at profiles.
    async fn update(&self, subject: &str, attributes: profiles::ProfileAttributes, paths: &[&str]) {
        let (mut client, token) = self.profiles_client();
        client
            .update_profile(call(
                &token,
                profiles::UpdateProfileRequest {
                    subject_id: subject.to_owned(),
                    attributes: Some(attributes),
                    update_mask: Some(prost_types::FieldMask {
                        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                    }),
                    source: "crm".to_owned(),
                },
            ))
            .await
            .unwrap();
    }

    /// The attributes segmentation exports for `subject`, as (field, value).
    async fn exported_attributes(&self, subject: &str) -> Vec<(String, String)> {
        let mut attributes: Vec<(String, String)> = self
            .exported(subject)
            .await
            .into_iter()
            .filter(|(category, _)| category == "segmentation.attributes")
            .map(|(_, document)| {
                (
                    document["field"].as_str().unwrap().to_owned(),
                    document["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        attributes.sort();
        attributes
    }

    /// Waits until segmentation holds exactly `expected` as the attributes of `subject`.
    async fn attributes_until(&self, subject: &str, expected: &[(&str, &str)]) {
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let held = self.exported_attributes(subject).await;
            if held == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "attributes {held:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn country(code: &str) -> profiles::ProfileAttributes {
    profiles::ProfileAttributes {
        country: code.to_owned(),
        ..Default::default()
    }
}

fn tier(value: &str) -> profiles::ProfileAttributes {
    profiles::ProfileAttributes {
        custom: [(
            "tier".to_owned(),
            profiles::AttributeValue {
                value: Some(profiles::attribute_value::Value::StringValue(
                    value.to_owned(),
                )),
            },
        )]
        .into(),
        ..Default::default()
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
    let change = message.change.unwrap();
    let reason = change.reason();
    (change.subject_id, change.joined, reason)
}

fn conditions(list: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    list.iter()
        .map(|(c, v, r)| ((*c).to_owned(), (*v).to_owned(), *r))
        .collect()
}

#[tokio::test]
async fn a_customer_moving_from_france_to_germany_leaves_a_segment_on_country() {
    let suite = Suite::start().await;
    suite
        .define_populated("french-buyers", r#"country == "FR" and orders >= 1"#)
        .await;
    let mut watch = suite.watch("french-buyers").await;
    let ada = suite.customer_with("ada@example.com", country("FR")).await;
    let bo = suite.customer_with("bo@example.com", country("DE")).await;
    let cy = suite.customer("cy@example.com").await;
    suite
        .record(vec![
            order(&ada, "A-1", 3, 4_000, "EUR"),
            order(&bo, "B-1", 4, 2_000, "EUR"),
            order(&cy, "C-1", 5, 2_000, "EUR"),
        ])
        .await;
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), true, pb::MembershipReason::Evaluated)
    );
    suite
        .aggregates_until(&cy, |a| a.is_some_and(|a| a["orders"] == 1))
        .await;
    assert_eq!(suite.members("french-buyers").await, [ada.as_str()]);
    assert_eq!(
        suite.explain("french-buyers", &ada).await,
        (
            conditions(&[
                (r#"country == "FR""#, r#""FR""#, true),
                ("orders >= 1", "1", true)
            ]),
            true
        )
    );
    // No country at all: no fact, the condition is false.
    assert_eq!(
        suite.explain("french-buyers", &cy).await,
        (
            conditions(&[
                (r#"country == "FR""#, "", false),
                ("orders >= 1", "1", true)
            ]),
            false
        )
    );

    // Ada moves to Germany, Bo to France: she leaves, he joins.
    suite.update(&ada, country("DE"), &["country"]).await;
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), false, pb::MembershipReason::Evaluated)
    );
    suite.update(&bo, country("FR"), &["country"]).await;
    assert_eq!(
        next(&mut watch).await,
        (bo.clone(), true, pb::MembershipReason::Evaluated)
    );
    assert_eq!(suite.members("french-buyers").await, [bo.as_str()]);
    let (ada_now, ada_in) = suite.explain("french-buyers", &ada).await;
    assert_eq!(
        ada_now[0],
        (r#"country == "FR""#.to_owned(), r#""DE""#.to_owned(), false)
    );
    assert!(!ada_in);
    suite.attributes_until(&ada, &[("country", "DE")]).await;
}

#[tokio::test]
async fn a_custom_attribute_set_then_cleared_at_profiles_moves_membership() {
    let suite = Suite::start().await;
    suite.define_attribute("tier").await;
    suite
        .define_populated("gold", r#"custom.tier == "gold" and locale == "fr-FR""#)
        .await;
    let mut watch = suite.watch("gold").await;
    let ada = suite
        .customer_with(
            "ada@example.com",
            profiles::ProfileAttributes {
                locale: "fr-FR".to_owned(),
                ..tier("silver")
            },
        )
        .await;
    suite
        .attributes_until(&ada, &[("custom.tier", "silver"), ("locale", "fr-FR")])
        .await;
    assert!(suite.members("gold").await.is_empty());

    suite.update(&ada, tier("gold"), &["custom.tier"]).await;
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), true, pb::MembershipReason::Evaluated)
    );
    assert_eq!(suite.members("gold").await, [ada.as_str()]);
    assert_eq!(
        suite.explain("gold", &ada).await.0[0],
        (
            r#"custom.tier == "gold""#.to_owned(),
            r#""gold""#.to_owned(),
            true
        )
    );

    // Cleared at profiles: the attribute disappears here too, and Ada leaves.
    suite
        .update(
            &ada,
            profiles::ProfileAttributes::default(),
            &["custom.tier"],
        )
        .await;
    assert_eq!(
        next(&mut watch).await,
        (ada.clone(), false, pb::MembershipReason::Evaluated)
    );
    suite.attributes_until(&ada, &[("locale", "fr-FR")]).await;
    assert!(suite.members("gold").await.is_empty());
}

#[tokio::test]
async fn erasure_removes_the_attributes_and_describe_lists_them() {
    let suite = Suite::start().await;
    let ada = suite
        .customer_with(
            "ada@example.com",
            profiles::ProfileAttributes {
                given_name: "Ada".to_owned(),
                locale: "fr-FR".to_owned(),
                ..country("FR")
            },
        )
        .await;
    suite
        .attributes_until(&ada, &[("country", "FR"), ("locale", "fr-FR")])
        .await;
    // Never a name: only the attributes rules read.
    let exported = format!("{:?}", suite.exported(&ada).await);
    assert!(!exported.contains("Ada"), "{exported}");

    let mut client = suite.segmentation.client(PersonalDataClient::new);
    let token = suite.token("segmentation", &[Scope::PrivacyExecute]);
    let receipt = client
        .erase(call(
            &token,
            privacy::EraseRequest {
                subject_id: ada.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let erased: Vec<(String, u64)> = receipt
        .erased
        .iter()
        .map(|e| (e.category.clone(), e.count))
        .collect();
    assert!(
        erased.contains(&("segmentation.attributes".to_owned(), 2)),
        "{erased:?}"
    );
    assert!(suite.exported_attributes(&ada).await.is_empty());

    let described = client
        .describe(call(&token, privacy::DescribeRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        described
            .categories
            .iter()
            .any(|c| c.key == "segmentation.attributes")
    );
}

#[tokio::test]
async fn a_merge_keeps_the_survivors_attributes_and_takes_the_others_it_lacks() {
    let suite = Suite::start().await;
    let ada = suite.customer_with("ada@example.com", country("FR")).await;
    let bo = suite
        .customer_with(
            "bo@example.com",
            profiles::ProfileAttributes {
                locale: "de-DE".to_owned(),
                ..country("DE")
            },
        )
        .await;
    suite.attributes_until(&ada, &[("country", "FR")]).await;
    suite
        .attributes_until(&bo, &[("country", "DE"), ("locale", "de-DE")])
        .await;
    let (mut client, token) = suite.profiles_client();
    client
        .merge_profiles(call(
            &token,
            profiles::MergeProfilesRequest {
                subject_id: ada.clone(),
                merged_subject_id: bo.clone(),
                reason: "same customer".to_owned(),
            },
        ))
        .await
        .unwrap();
    suite
        .attributes_until(&ada, &[("country", "FR"), ("locale", "de-DE")])
        .await;
    assert!(suite.exported_attributes(&bo).await.is_empty());
}
