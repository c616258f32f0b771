//! What a shop does with the suite: define what it processes data for, register customers,
//! record their decisions and their orders.

use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_suite::Member;
use tonic::transport::Channel;

use super::{Caller, Journey, authorized};

/// A purpose of the consent service.
pub struct PurposeSpec<'a> {
    pub key: &'a str,
    pub basis: common::LawfulBasis,
    pub channels: &'a [consent::Channel],
    /// What it uses; for `share:` purposes, the profile fields shared.
    pub categories: &'a [&'a str],
    pub direct_marketing: bool,
    /// The notice shown when asking for consent.
    pub notice: &'a str,
}

/// Defines the purpose and publishes its notice; the notice's version, which grants cite.
pub async fn define_purpose(journey: &Journey, officer: &Caller, spec: PurposeSpec<'_>) -> String {
    let token = officer.token(Member::Consent).await;
    let mut purposes = PurposesClient::new(journey.channel(Member::Consent));
    purposes
        .define_purpose(authorized(
            &token,
            consent::DefinePurposeRequest {
                purpose: Some(consent::Purpose {
                    key: spec.key.to_owned(),
                    description: format!("{} (end-to-end journey)", spec.key),
                    lawful_basis: spec.basis.into(),
                    channels: spec.channels.iter().map(|c| (*c).into()).collect(),
                    data_categories: spec.categories.iter().map(|c| (*c).to_owned()).collect(),
                    direct_marketing: spec.direct_marketing,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    purposes
        .publish_notice(authorized(
            &token,
            consent::PublishNoticeRequest {
                purpose_key: spec.key.to_owned(),
                text: spec.notice.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version
}

/// An email address as an identifier.
pub fn email(address: &str) -> common::Identifier {
    common::Identifier {
        kind: common::IdentifierKind::Email.into(),
        value: address.to_owned(),
        ..Default::default()
    }
}

pub fn by_id(subject: &str) -> common::SubjectRef {
    common::SubjectRef {
        subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
    }
}

pub fn by_identifier(identifier: common::Identifier) -> common::SubjectRef {
    common::SubjectRef {
        subject: Some(common::subject_ref::Subject::Identifier(identifier)),
    }
}

/// Registers a customer with this email address and first name, as the shop's sign-up form
/// does; their subject id.
pub async fn customer(journey: &Journey, shop: &Caller, address: &str, given_name: &str) -> String {
    super::logs::forbid(address);
    super::logs::forbid(given_name);
    let created = ProfilesClient::new(journey.channel(Member::Profiles))
        .upsert_profile(authorized(
            &shop.token(Member::Profiles).await,
            profiles::UpsertProfileRequest {
                identifiers: vec![profiles::NewIdentifier {
                    identifier: Some(email(address)),
                    verified: true,
                    verification_method: "email_link".to_owned(),
                    ..Default::default()
                }],
                attributes: Some(profiles::ProfileAttributes {
                    given_name: given_name.to_owned(),
                    locale: "en".to_owned(),
                    ..Default::default()
                }),
                source: "web_shop".to_owned(),
                merge_if_needed: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    created.profile.unwrap().subject_id
}

/// Records the subject's decision on `purpose` at consent.
pub async fn decide(
    journey: &Journey,
    caller: &Caller,
    subject: &str,
    purpose: &str,
    channel: consent::Channel,
    decision: consent::Decision,
    notice: &str,
) -> consent::LedgerEntry {
    ConsentsClient::new(journey.channel(Member::Consent))
        .record_consent(authorized(
            &caller.token(Member::Consent).await,
            consent::RecordConsentRequest {
                subject_id: subject.to_owned(),
                purpose_key: purpose.to_owned(),
                decision: decision.into(),
                channel: channel.into(),
                collection_point: "checkout".to_owned(),
                notice_version: notice.to_owned(),
                evidence: Some(consent::Evidence {
                    form_id: "checkout-v3".to_owned(),
                    ..Default::default()
                }),
                expires_at: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap()
}

/// The decisions in force for the subject.
pub async fn consent_state(
    journey: &Journey,
    caller: &Caller,
    subject: &str,
) -> Vec<consent::ConsentState> {
    ConsentsClient::new(journey.channel(Member::Consent))
        .get_consent_state(authorized(
            &caller.token(Member::Consent).await,
            consent::GetConsentStateRequest {
                subject_id: subject.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .states
}

/// One order of the subject: `amount_minor` euros cents, `days_ago` days ago.
pub struct OrderSpec<'a> {
    pub subject: &'a str,
    pub order_id: &'a str,
    pub days_ago: i64,
    pub amount_minor: i64,
}

/// Records the orders at profiles in one batch, as the shop's order pipeline does.
pub async fn record_orders(journey: &Journey, shop: &Caller, orders: &[OrderSpec<'_>]) {
    record_orders_at(journey.channel(Member::Profiles), shop, orders).await;
}

/// [`record_orders`] at the profiles server of `profiles`.
pub async fn record_orders_at(profiles: Channel, shop: &Caller, orders: &[OrderSpec<'_>]) {
    let now = chrono::Utc::now();
    let interactions = orders
        .iter()
        .map(|order| {
            let total = common::Money {
                amount_minor: order.amount_minor,
                currency: "EUR".to_owned(),
            };
            profiles::Interaction {
                event_id: format!("order-{}", order.order_id),
                subject: Some(by_id(order.subject)),
                channel: profiles::Channel::Web.into(),
                occurred_at: Some(prost_types::Timestamp {
                    seconds: (now - chrono::Duration::days(order.days_ago)).timestamp() - 60,
                    nanos: 0,
                }),
                details: Some(profiles::interaction::Details::Order(profiles::Order {
                    order_id: order.order_id.to_owned(),
                    total: Some(total.clone()),
                    line_items: vec![profiles::LineItem {
                        product_id: "tent-2p".to_owned(),
                        category: "camping".to_owned(),
                        quantity: 1,
                        unit_price: Some(total),
                    }],
                })),
            }
        })
        .collect();
    let recorded = InteractionsClient::new(profiles)
        .record_interactions(authorized(
            &shop.token(Member::Profiles).await,
            tokio_stream::iter([profiles::RecordInteractionsRequest { interactions }]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(recorded.recorded, orders.len() as u64);
}
