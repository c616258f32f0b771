//! Demo data for a first look at the suite (`ecrm up --demo`): customers with two years of
//! orders and browsing, consents of every kind, a partner airline's account and open data
//! subject requests, all written through the services' own APIs as a shop would.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ecrm_auth::{Scope, Scopes};
use ecrm_client::proto::common::v1::{
    Identifier, IdentifierKind, LawfulBasis, Money, SubjectRef, subject_ref,
};
use ecrm_client::proto::consent::v1 as consent;
use ecrm_client::proto::identity::v1 as identity;
use ecrm_client::proto::profiles::v1 as profiles;
use ecrm_client::{Client, Credentials, Endpoints, Service};
use futures::{StreamExt as _, TryStreamExt as _};

use crate::{Member, Suite};

/// The partner airline of the demo.
pub const PARTNER_ID: &str = "skyways";
/// Calls in flight at once while seeding.
const CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create the demo's account at identity")]
    Account(#[from] crate::SuiteError),
    #[error(transparent)]
    Client(#[from] ecrm_client::ClientError),
    #[error("cannot {doing}: {status}")]
    Call {
        doing: &'static str,
        status: tonic::Status,
    },
}

fn call(doing: &'static str) -> impl FnOnce(tonic::Status) -> DemoError {
    move |status| DemoError::Call { doing, status }
}

/// How far seeding has got, for a progress bar.
pub trait Progress: Send + Sync {
    /// A stage of `total` steps starts.
    fn stage(&self, name: &str, total: u64);
    /// `steps` more are done.
    fn advance(&self, steps: u64);
}

/// What the demo created that its user needs.
#[derive(Debug)]
pub struct Seeded {
    pub customers: usize,
    pub orders: usize,
    pub partner_client_id: String,
    /// Shown once: identity keeps only its hash.
    pub partner_client_secret: String,
    pub open_requests: usize,
}

/// Seeds `customers` customers (10,000 for `ecrm up --demo`) into a freshly started suite.
pub async fn seed(
    suite: &Suite,
    customers: usize,
    progress: &dyn Progress,
) -> Result<Seeded, DemoError> {
    let scopes = [
        Scope::IdentityAdmin,
        Scope::ProfilesRead,
        Scope::ProfilesWrite,
        Scope::EventsWrite,
        Scope::ConsentRead,
        Scope::ConsentWrite,
        Scope::DsrSubmit,
        Scope::DsrManage,
    ]
    .into_iter()
    .fold(Scopes::empty(), Scopes::with);
    let (client_id, secret) = suite.internal_account("ecrm up: demo data", scopes).await?;
    let mut endpoints = Endpoints::identity(suite.url(Member::Identity));
    for (service, member) in [
        (Service::Profiles, Member::Profiles),
        (Service::Consent, Member::Consent),
        (Service::Segmentation, Member::Segmentation),
        (Service::Outbound, Member::Outbound),
    ] {
        endpoints = endpoints.with(service, suite.url(member));
    }
    let client = Client::connect_with_tls(
        endpoints,
        Credentials::service_account(client_id, secret.expose().clone()),
        &suite.tls().client,
    )?;

    let notices = define_purposes(&client).await?;
    let (partner_client_id, partner_client_secret) = partner_account(&client).await?;
    let people = people(customers);
    let subjects = create_customers(&client, &people, progress).await?;
    let orders = record_history(&client, &subjects, progress).await?;
    record_consents(&client, &subjects, &notices, progress).await?;
    let open_requests = open_requests(&client, &subjects).await?;
    Ok(Seeded {
        customers: subjects.len(),
        orders,
        partner_client_id,
        partner_client_secret,
        open_requests,
    })
}

/// A small deterministic generator (SplitMix64): the same demo every time.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0 to `n - 1`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

const GIVEN: [&str; 16] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Frances",
    "John",
    "Radia",
    "Tim",
    "Sophie",
    "Hedy",
    "Niklaus",
    "Katherine",
];
const FAMILY: [&str; 16] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Allen",
    "Backus",
    "Perlman",
    "Berners-Lee",
    "Wilson",
    "Lamarr",
    "Wirth",
    "Johnson",
];
const PLACES: [(&str, &str, &str); 5] = [
    ("FR", "fr-FR", "Europe/Paris"),
    ("DE", "de-DE", "Europe/Berlin"),
    ("ES", "es-ES", "Europe/Madrid"),
    ("IT", "it-IT", "Europe/Rome"),
    ("IE", "en-IE", "Europe/Dublin"),
];
const CATALOGUE: [(&str, &str, i64); 8] = [
    ("FLT-PAR-NYC", "flights", 48_900),
    ("FLT-MAD-LIS", "flights", 12_900),
    ("HTL-ROME-3N", "hotels", 36_000),
    ("HTL-BERLIN-2N", "hotels", 21_000),
    ("CAR-DUB-7D", "car_hire", 27_500),
    ("INS-TRAVEL-Y", "insurance", 5_900),
    ("BAG-EXTRA", "extras", 3_500),
    ("SEAT-PLUS", "extras", 2_900),
];

struct Person {
    given: &'static str,
    family: &'static str,
    email: String,
    place: (&'static str, &'static str, &'static str),
}

fn people(count: usize) -> Vec<Person> {
    let mut dice = Dice(2026);
    (0..count)
        .map(|n| {
            let given = *dice.pick(&GIVEN);
            let family = *dice.pick(&FAMILY);
            Person {
                given,
                family,
                email: format!(
                    "{}.{}.{n}@example.com",
                    given.to_lowercase(),
                    family.to_lowercase().replace('-', "")
                ),
                place: *dice.pick(&PLACES),
            }
        })
        .collect()
}

/// The purposes of a travel shop, each with its notice; returns (purpose, notice version).
async fn define_purposes(client: &Client) -> Result<Vec<(String, String)>, DemoError> {
    let purposes = [
        (
            "marketing_email",
            "Offers and newsletters by email",
            LawfulBasis::Consent,
            consent::Channel::Email,
            true,
        ),
        (
            "marketing_sms",
            "Offers by text message",
            LawfulBasis::Consent,
            consent::Channel::Sms,
            true,
        ),
        (
            "similar_products_email",
            "Offers on trips like the ones you booked, by email",
            LawfulBasis::SoftOptIn,
            consent::Channel::Email,
            true,
        ),
        (
            "profiling",
            "Personalised recommendations from your bookings",
            LawfulBasis::Consent,
            consent::Channel::Email,
            false,
        ),
        (
            "share:skyways",
            "Your booking details shared with Skyways, our partner airline",
            LawfulBasis::Consent,
            consent::Channel::Partner,
            false,
        ),
    ];
    let mut notices = Vec::new();
    for (key, description, basis, channel, direct_marketing) in purposes {
        let defined = client
            .purposes()?
            .define_purpose(consent::DefinePurposeRequest {
                purpose: Some(consent::Purpose {
                    key: key.to_owned(),
                    description: description.to_owned(),
                    lawful_basis: basis.into(),
                    channels: vec![channel.into()],
                    data_categories: vec![
                        "email".to_owned(),
                        "given_name".to_owned(),
                        "family_name".to_owned(),
                    ],
                    retention_days: 0,
                    direct_marketing,
                    ..Default::default()
                }),
            })
            .await;
        match defined {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::AlreadyExists => {}
            Err(status) => return Err(call("define the demo's purposes")(status)),
        }
        let notice = client
            .purposes()?
            .publish_notice(consent::PublishNoticeRequest {
                purpose_key: key.to_owned(),
                text: format!(
                    "{description}. You can withdraw at any time, as easily as you agreed."
                ),
            })
            .await
            .map_err(call("publish the demo's notices"))?
            .into_inner();
        notices.push((key.to_owned(), notice.version));
    }
    Ok(notices)
}

/// The partner airline's service account: it may upsert profiles by its own reference and
/// read those who agreed to share with it.
async fn partner_account(client: &Client) -> Result<(String, String), DemoError> {
    let created = client
        .service_accounts()?
        .create_service_account(identity::CreateServiceAccountRequest {
            display_name: "Skyways (partner airline)".to_owned(),
            kind: identity::PrincipalKind::Partner.into(),
            partner_id: PARTNER_ID.to_owned(),
            scopes: vec![
                "profiles.read".to_owned(),
                "profiles.write".to_owned(),
                "consent.read".to_owned(),
            ],
            secret_expires_at: None,
        })
        .await
        .map_err(call("create the partner airline's account"))?
        .into_inner();
    let client_id = created
        .account
        .map(|account| account.client_id)
        .unwrap_or_default();
    Ok((client_id, created.client_secret))
}

async fn create_customers(
    client: &Client,
    people: &[Person],
    progress: &dyn Progress,
) -> Result<Vec<String>, DemoError> {
    progress.stage("customers", people.len() as u64);
    let profiles = client.profiles()?;
    futures::stream::iter(people)
        .map(|person| {
            let mut profiles = profiles.clone();
            async move {
                let (country, locale, timezone) = person.place;
                let created = profiles
                    .upsert_profile(profiles::UpsertProfileRequest {
                        identifiers: vec![profiles::NewIdentifier {
                            identifier: Some(email(&person.email)),
                            verified: true,
                            ..Default::default()
                        }],
                        attributes: Some(profiles::ProfileAttributes {
                            given_name: person.given.to_owned(),
                            family_name: person.family.to_owned(),
                            locale: locale.to_owned(),
                            country: country.to_owned(),
                            timezone: timezone.to_owned(),
                            ..Default::default()
                        }),
                        source: "demo".to_owned(),
                        merge_if_needed: false,
                    })
                    .await
                    .map_err(call("create the demo's customers"))?
                    .into_inner();
                progress.advance(1);
                Ok::<_, DemoError>(created.profile.map(|p| p.subject_id).unwrap_or_default())
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

fn email(address: &str) -> Identifier {
    Identifier {
        kind: IdentifierKind::Email.into(),
        value: address.to_owned(),
        ..Default::default()
    }
}

fn by_id(subject_id: &str) -> Option<SubjectRef> {
    Some(SubjectRef {
        subject: Some(subject_ref::Subject::SubjectId(subject_id.to_owned())),
    })
}

fn timestamp(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

/// Two years of bookings and browsing: most customers book a few times, a few book often,
/// some only browse. Returns how many orders were recorded.
async fn record_history(
    client: &Client,
    subjects: &[String],
    progress: &dyn Progress,
) -> Result<usize, DemoError> {
    let mut dice = Dice(1815);
    let now = Utc::now();
    let mut interactions = Vec::new();
    let mut orders = 0;
    for (n, subject) in subjects.iter().enumerate() {
        // Skewed: many 0-2 bookings, a loyal tail up to 12.
        let bookings = match dice.below(10) {
            0..=2 => 0,
            3..=6 => 1 + dice.below(2),
            7..=8 => 3 + dice.below(3),
            _ => 6 + dice.below(7),
        };
        for b in 0..bookings {
            let at =
                now - Duration::minutes(i64::try_from(dice.below(2 * 365 * 24 * 60)).unwrap_or(0));
            let lines: Vec<profiles::LineItem> = (0..1 + dice.below(3))
                .map(|_| {
                    let (product, category, price) = *dice.pick(&CATALOGUE);
                    profiles::LineItem {
                        product_id: product.to_owned(),
                        category: category.to_owned(),
                        quantity: 1,
                        unit_price: Some(euros(price)),
                    }
                })
                .collect();
            let total = lines
                .iter()
                .map(|line| line.unit_price.as_ref().map_or(0, |p| p.amount_minor))
                .sum();
            interactions.push(profiles::Interaction {
                event_id: format!("demo-order-{n}-{b}"),
                subject: by_id(subject),
                channel: profiles::Channel::Web.into(),
                occurred_at: timestamp(at),
                details: Some(profiles::interaction::Details::Order(profiles::Order {
                    order_id: format!("ORD-{n:05}-{b:02}"),
                    total: Some(euros(total)),
                    line_items: lines,
                })),
            });
            orders += 1;
        }
        for v in 0..dice.below(6) {
            let at = now - Duration::minutes(i64::try_from(dice.below(90 * 24 * 60)).unwrap_or(0));
            let (product, category, _) = *dice.pick(&CATALOGUE);
            interactions.push(profiles::Interaction {
                event_id: format!("demo-view-{n}-{v}"),
                subject: by_id(subject),
                channel: profiles::Channel::App.into(),
                occurred_at: timestamp(at),
                details: Some(profiles::interaction::Details::ProductView(
                    profiles::ProductView {
                        product_id: product.to_owned(),
                        category: category.to_owned(),
                    },
                )),
            });
        }
    }
    progress.stage("bookings and browsing", interactions.len() as u64);
    let batches: Vec<Vec<profiles::Interaction>> =
        interactions.chunks(1000).map(<[_]>::to_vec).collect();
    for batch in batches {
        let size = batch.len() as u64;
        client
            .interactions()?
            .record_interactions(futures::stream::iter([
                profiles::RecordInteractionsRequest {
                    interactions: batch,
                },
            ]))
            .await
            .map_err(call("record the demo's bookings"))?;
        progress.advance(size);
    }
    Ok(orders)
}

fn euros(cents: i64) -> Money {
    Money {
        amount_minor: cents,
        currency: "EUR".to_owned(),
    }
}

/// Subject, purpose, notice version, channel, collection point and decision.
type Decision = (
    String,
    String,
    String,
    consent::Channel,
    &'static str,
    consent::Decision,
);

/// Consents of every kind: granted at checkout or in the app, some later withdrawn.
async fn record_consents(
    client: &Client,
    subjects: &[String],
    notices: &[(String, String)],
    progress: &dyn Progress,
) -> Result<(), DemoError> {
    let mut dice = Dice(1679);
    let mut decisions: Vec<Decision> = Vec::new();
    for subject in subjects {
        for (purpose, notice) in notices {
            let (percent, channel) = match purpose.as_str() {
                "marketing_email" => (60, consent::Channel::Email),
                "marketing_sms" => (25, consent::Channel::Sms),
                "profiling" => (45, consent::Channel::Email),
                "share:skyways" => (30, consent::Channel::Partner),
                // Soft opt-in rests on the purchase: nothing to record.
                _ => continue,
            };
            if !dice.chance(percent) {
                continue;
            }
            let point = if dice.chance(70) {
                "checkout"
            } else {
                "preference_centre"
            };
            decisions.push((
                subject.clone(),
                purpose.clone(),
                notice.clone(),
                channel,
                point,
                consent::Decision::Granted,
            ));
            if dice.chance(8) {
                decisions.push((
                    subject.clone(),
                    purpose.clone(),
                    String::new(),
                    channel,
                    "preference_centre",
                    consent::Decision::Withdrawn,
                ));
            }
        }
    }
    progress.stage("consents", decisions.len() as u64);
    let consents = Arc::new(client.consents()?);
    // One subject's decisions in order (grant, then withdrawal): by subject, in sequence.
    let mut by_subject: Vec<Vec<Decision>> = Vec::new();
    for decision in decisions {
        match by_subject.last_mut() {
            Some(last) if last[0].0 == decision.0 => last.push(decision),
            _ => by_subject.push(vec![decision]),
        }
    }
    futures::stream::iter(by_subject)
        .map(|decisions| {
            let consents = consents.clone();
            async move {
                for (subject, purpose, notice, channel, point, decision) in decisions {
                    (*consents)
                        .clone()
                        .record_consent(consent::RecordConsentRequest {
                            subject_id: subject,
                            purpose_key: purpose,
                            decision: decision.into(),
                            channel: channel.into(),
                            collection_point: point.to_owned(),
                            notice_version: notice,
                            evidence: Some(consent::Evidence {
                                form_id: format!("demo-{point}"),
                                ..Default::default()
                            }),
                            expires_at: None,
                        })
                        .await
                        .map_err(call("record the demo's consents"))?;
                    progress.advance(1);
                }
                Ok::<_, DemoError>(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// A few requests in different states, so their due dates differ: one awaiting verification
/// (its deadline paused), one awaiting approval, and others whose deadline was extended.
async fn open_requests(client: &Client, subjects: &[String]) -> Result<usize, DemoError> {
    let today = Utc::now();
    let plans: [(
        usize,
        consent::RequestType,
        consent::RequestChannel,
        i64,
        Option<u32>,
        bool,
    ); 5] = [
        (
            3,
            consent::RequestType::Access,
            consent::RequestChannel::Web,
            0,
            None,
            false,
        ),
        (
            11,
            consent::RequestType::Erasure,
            consent::RequestChannel::Email,
            12,
            None,
            true,
        ),
        (
            17,
            consent::RequestType::Portability,
            consent::RequestChannel::Post,
            25,
            Some(2),
            true,
        ),
        (
            23,
            consent::RequestType::Objection,
            consent::RequestChannel::Phone,
            5,
            Some(1),
            true,
        ),
        (
            29,
            consent::RequestType::Access,
            consent::RequestChannel::Email,
            2,
            None,
            true,
        ),
    ];
    let mut requests = client.requests()?;
    let mut opened = 0;
    for (index, kind, channel, days_ago, extension, verify) in plans {
        let Some(subject) = subjects.get(index) else {
            continue;
        };
        let submitted = requests
            .submit_request(consent::SubmitRequestRequest {
                subject: by_id(subject),
                r#type: kind.into(),
                channel: channel.into(),
                received_at: timestamp(today - Duration::days(days_ago)),
                corrections: Vec::new(),
            })
            .await
            .map_err(call("open the demo's requests"))?
            .into_inner();
        let id = submitted.request.map(|r| r.request_id).unwrap_or_default();
        if verify {
            requests
                .verify_requester(consent::VerifyRequesterRequest {
                    request_id: id.clone(),
                    reason: "checked against the booking reference on file".to_owned(),
                })
                .await
                .map_err(call("verify the demo's requesters"))?;
        }
        if let Some(months) = extension {
            requests
                .extend_deadline(consent::ExtendDeadlineRequest {
                    request_id: id.clone(),
                    months,
                    reason: "complex: bookings held by several systems and a partner".to_owned(),
                })
                .await
                .map_err(call("extend the demo's deadlines"))?;
        }
        opened += 1;
    }
    Ok(opened)
}
