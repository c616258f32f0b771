//! A partner airline syncing its passengers with a service account of its own, and reaching
//! exactly the customers who consented to share with it, within what they share.

use std::collections::BTreeMap;

use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::identity::v1 as identity;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::partner_sync_client::PartnerSyncClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_suite::Member;
use tonic::Code;

use crate::support::customers::{
    PurposeSpec, by_id, by_identifier, customer, decide, define_purpose, email,
};
use crate::support::{Caller, Journey, authorized, eventually, reading};

const AIRLINE: &str = "air-one";
const SHARE: &str = "share:air-one";
/// Another partner's sharing purpose: consenting to it shares nothing with the airline.
const SHARE_ELSEWHERE: &str = "share:hotel-two";

/// The airline's passengers: its reference, their email address and first name.
const PASSENGERS: [(&str, &str, &str); 3] = [
    ("AF-1", "grace@example.com", "Grace"),
    ("AF-2", "alan@example.com", "Alan"),
    ("AF-3", "edsger@example.com", "Edsger"),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_airline_sees_exactly_the_customers_who_consented_to_share_with_it() {
    let journey = Journey::start().await;
    let admin = &journey.admin;
    let airline = admin
        .create_account(
            "Air One passenger sync",
            identity::PrincipalKind::Partner,
            AIRLINE,
            &["profiles.read", "profiles.write"],
        )
        .await;
    let shop = admin
        .create_account(
            "web shop",
            identity::PrincipalKind::Internal,
            "",
            &[
                "profiles.read",
                "profiles.write",
                "consent.read",
                "consent.write",
            ],
        )
        .await;
    let mut notices = BTreeMap::new();
    for (key, partner) in [(SHARE, "Air One"), (SHARE_ELSEWHERE, "Hotel Two")] {
        let notice = format!("We share your first name and email address with {partner}.");
        let spec = PurposeSpec {
            key,
            basis: common::LawfulBasis::Consent,
            channels: &[consent::Channel::Partner],
            categories: &["given_name", "email"],
            direct_marketing: false,
            notice: &notice,
        };
        notices.insert(key, define_purpose(&journey, admin, spec).await);
    }

    // Synced twice, as a nightly job would: the second pass finds the same customers and
    // creates no one.
    let synced = sync(&journey, &airline).await;
    let profiles_before = count_profiles(&journey, admin).await;
    assert_eq!(sync(&journey, &airline).await, synced);
    assert_eq!(count_profiles(&journey, admin).await, profiles_before);
    assert_eq!(profiles_before, PASSENGERS.len());
    let [grace, alan, edsger] = synced;

    // Customers of the shop the airline never synced.
    let barbara = customer(&journey, &shop, "barbara@example.com", "Barbara").await;
    let ken = customer(&journey, &shop, "ken@example.com", "Ken").await;
    let linus = customer(&journey, &shop, "linus@example.com", "Linus").await;
    let decision = |subject: String, purpose: &'static str, decision: consent::Decision| {
        let (journey, shop, notice) = (&journey, &shop, notices[purpose].clone());
        async move {
            decide(
                journey,
                shop,
                &subject,
                purpose,
                consent::Channel::Partner,
                decision,
                &notice,
            )
            .await
        }
    };
    for subject in [&grace, &edsger, &barbara] {
        decision(subject.clone(), SHARE, consent::Decision::Granted).await;
    }
    decision(ken.clone(), SHARE_ELSEWHERE, consent::Decision::Granted).await;
    // Alan and Linus are never asked.

    let shared = pulled_until(&journey, &airline, &[&grace, &edsger, &barbara]).await;
    let seen = &shared[&grace];
    assert_eq!(seen.external_id, "AF-1");
    let attributes = seen.attributes.clone().unwrap();
    assert_eq!(attributes.given_name, "Grace");
    assert_eq!(attributes.locale, "", "not covered by the consent");
    let mut identifiers: Vec<&str> = seen.identifiers.iter().map(|i| i.value.as_str()).collect();
    identifiers.sort_unstable();
    assert_eq!(identifiers, ["AF-1", "grace@example.com"]);
    // A customer of the shop who shares with the airline reaches it too, with no reference.
    assert_eq!(shared[&barbara].external_id, "");
    assert_eq!(
        shared[&barbara].attributes.clone().unwrap().given_name,
        "Barbara"
    );

    // Withdrawing is as easy as granting, and ends the sharing.
    decision(edsger.clone(), SHARE, consent::Decision::Withdrawn).await;
    pulled_until(&journey, &airline, &[&grace, &barbara]).await;

    // Object-level: what the airline reads of each customer.
    let read = |subject: common::SubjectRef| {
        let (journey, airline) = (&journey, &airline);
        async move {
            ProfilesClient::new(journey.channel(Member::Profiles))
                .get_profile(reading(
                    &airline.token(Member::Profiles).await,
                    "partner_sharing",
                    profiles::GetProfileRequest {
                        subject: Some(subject),
                    },
                ))
                .await
                .map(|response| response.into_inner().profile.unwrap())
        }
    };
    let barbara_seen = read(by_id(&barbara)).await.unwrap();
    assert_eq!(barbara_seen.attributes.unwrap().given_name, "Barbara");
    // Those it synced but who share nothing: only its own reference.
    for (subject, reference) in [(&alan, "AF-2"), (&edsger, "AF-3")] {
        let own = read(by_id(subject)).await.unwrap();
        assert_eq!(
            own.attributes.unwrap(),
            profiles::ProfileAttributes::default()
        );
        let values: Vec<String> = own
            .identifiers
            .iter()
            .map(|i| i.identifier.clone().unwrap().value)
            .collect();
        assert_eq!(values, [reference]);
    }
    // Everyone else is out of reach, as if they did not exist: by id, or by a reference of its
    // own it never synced.
    for reference in [
        by_id(&ken),
        by_id(&linus),
        by_identifier(own_reference("AF-9")),
    ] {
        let status = read(reference).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    // Nor can it probe for customers by address: partners look up by id or their own
    // reference only.
    for address in ["ken@example.com", "barbara@example.com"] {
        let status = read(by_identifier(email(address))).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    journey.stop().await;
}

/// The airline's own reference for a passenger.
fn own_reference(reference: &str) -> common::Identifier {
    common::Identifier {
        kind: common::IdentifierKind::PartnerReference.into(),
        value: reference.to_owned(),
        partner_id: AIRLINE.to_owned(),
        ..Default::default()
    }
}

/// Upserts every passenger by the airline's reference; their subject ids, in order.
async fn sync(journey: &Journey, airline: &Caller) -> [String; 3] {
    let token = airline.token(Member::Profiles).await;
    let mut sync = PartnerSyncClient::new(journey.channel(Member::Profiles));
    let mut subjects = Vec::new();
    for (reference, address, given_name) in PASSENGERS {
        crate::support::logs::forbid(address);
        crate::support::logs::forbid(given_name);
        let upserted = sync
            .upsert_partner_profile(authorized(
                &token,
                profiles::UpsertPartnerProfileRequest {
                    external_id: reference.to_owned(),
                    identifiers: vec![profiles::NewIdentifier {
                        identifier: Some(email(address)),
                        ..Default::default()
                    }],
                    attributes: Some(profiles::ProfileAttributes {
                        given_name: given_name.to_owned(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        subjects.push(upserted.subject_id);
    }
    subjects.try_into().unwrap()
}

async fn count_profiles(journey: &Journey, admin: &Caller) -> usize {
    ProfilesClient::new(journey.channel(Member::Profiles))
        .list_profiles(reading(
            &admin.token(Member::Profiles).await,
            "customer_service",
            profiles::ListProfilesRequest {
                page: Some(common::PageRequest {
                    page_size: 500,
                    page_token: String::new(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profiles
        .len()
}

/// Pulls every change from the start until the subjects shared are exactly `expected` (the
/// feed shows a change once every older transaction has ended); what was shared of each.
async fn pulled_until(
    journey: &Journey,
    airline: &Caller,
    expected: &[&String],
) -> BTreeMap<String, profiles::SharedProfile> {
    let token = airline.token(Member::Profiles).await;
    let mut wanted: Vec<&str> = expected.iter().map(|s| s.as_str()).collect();
    wanted.sort_unstable();
    eventually("exactly the consenting customers pulled", || {
        let (token, wanted) = (token.clone(), wanted.clone());
        async move {
            let shared = pull_all(journey, &token).await;
            (shared.keys().map(String::as_str).collect::<Vec<_>>() == wanted).then_some(shared)
        }
    })
    .await
}

/// Every change shared with the airline from the first, the latest of each subject.
async fn pull_all(journey: &Journey, token: &str) -> BTreeMap<String, profiles::SharedProfile> {
    let mut sync = PartnerSyncClient::new(journey.channel(Member::Profiles));
    let mut shared = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let page = sync
            .pull_changes(authorized(
                token,
                profiles::PullChangesRequest {
                    cursor: cursor.clone(),
                    max_changes: 0,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        for profile in page.profiles {
            shared.insert(profile.subject_id.clone(), profile);
        }
        if page.next_cursor == cursor {
            return shared;
        }
        cursor = page.next_cursor;
    }
}
