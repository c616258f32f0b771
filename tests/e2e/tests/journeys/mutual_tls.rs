//! The suite over mutual TLS: every service requires a client certificate of the suite's CA or
//! of a partner's, and the services reach each other with theirs. A partner holding a valid
//! token still gets nowhere without its certificate.

use ecrm_auth::tls::{ClientTls, ServerTls};
use ecrm_platform::tls::Tls;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::identity::v1 as identity;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::partner_sync_client::PartnerSyncClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_suite::Member;
use ecrm_testkit::{Issued, TestCa};
use tonic::transport::{Certificate, Channel, Endpoint, Identity};

use crate::support::customers::{PurposeSpec, by_id, decide, define_purpose, email};
use crate::support::{Caller, Journey, authorized, eventually, reading};

const AIRLINE: &str = "air-one";
const SHARE: &str = "share:air-one";

fn identity_of(issued: &Issued) -> Identity {
    Identity::from_pem(&issued.cert_pem, &issued.key_pem)
}

/// The suite's CA, which certifies its services; the airline's own CA; and a CA no one listed.
struct Pki {
    suite: TestCa,
    airline: TestCa,
    stranger: TestCa,
}

impl Pki {
    fn new() -> Self {
        Self {
            suite: TestCa::new("ecrm suite CA").unwrap(),
            airline: TestCa::new("Air One CA").unwrap(),
            stranger: TestCa::new("stranger CA").unwrap(),
        }
    }

    /// What every member serves and calls with: one certificate of the suite's CA for
    /// loopback, and the suite's and the airline's CAs as the clients' CAs.
    fn suite_tls(&self) -> Tls {
        let member = identity_of(&self.suite.issue_loopback("ecrm services").unwrap());
        let client_cas = Certificate::from_pem(self.suite.pem() + &self.airline.pem());
        Tls {
            server: Some(ServerTls::new(member.clone()).requiring_clients_of(client_cas)),
            client: self.trusting_the_suite().presenting(member),
        }
    }

    fn trusting_the_suite(&self) -> ClientTls {
        ClientTls::default().trusting(Certificate::from_pem(self.suite.pem()))
    }

    /// A client trusting the suite's CA, presenting a certificate of `ca` when given.
    fn client(&self, ca: Option<&TestCa>, name: &str) -> ClientTls {
        match ca {
            Some(ca) => self
                .trusting_the_suite()
                .presenting(identity_of(&ca.issue(name, &[]).unwrap())),
            None => self.trusting_the_suite(),
        }
    }
}

/// A channel to `member` as `tls` reaches it; `scheme` is `https` unless a test tries
/// plaintext.
fn channel(journey: &Journey, member: Member, scheme: &str, tls: &ClientTls) -> Channel {
    let addr = journey.suite().addr(member);
    let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).unwrap();
    tls.secure(endpoint).unwrap().connect_lazy()
}

#[tokio::test(flavor = "multi_thread")]
async fn over_mutual_tls_the_suite_serves_certified_callers_and_no_one_else() {
    let pki = Pki::new();
    let journey = Journey::start_with_tls(pki.suite_tls(), |settings| settings).await;
    assert!(
        journey
            .suite()
            .url(Member::Profiles)
            .starts_with("https://")
    );

    // The admin (with the suite's certificate) sets up a partner account and a purpose.
    let admin = &journey.admin;
    let airline_tls = pki.client(Some(&pki.airline), "air-one sync");
    let airline = admin
        .create_account(
            "Air One passenger sync",
            identity::PrincipalKind::Partner,
            AIRLINE,
            &["profiles.read", "profiles.write"],
        )
        .await
        .via(channel(&journey, Member::Identity, "https", &airline_tls));
    let shop = admin
        .create_account(
            "web shop",
            identity::PrincipalKind::Internal,
            "",
            &["profiles.write", "consent.write"],
        )
        .await;
    let notice = "We share your first name and email address with Air One.";
    let notice_version = define_purpose(
        &journey,
        admin,
        PurposeSpec {
            key: SHARE,
            basis: common::LawfulBasis::Consent,
            channels: &[consent::Channel::Partner],
            categories: &["given_name", "email"],
            direct_marketing: false,
            notice,
        },
    )
    .await;

    // The airline, over its own certificate, syncs a passenger; it sees only its reference
    // until the passenger consents to share.
    let profiles = channel(&journey, Member::Profiles, "https", &airline_tls);
    let passenger = sync_passenger(&profiles, &airline).await;
    assert_eq!(
        given_name_seen(&profiles, &airline, &passenger).await,
        Ok(String::new())
    );

    // Consenting is recorded at consent; profiles asks consent what is shared, over mutual
    // TLS with the suite's certificate.
    decide(
        &journey,
        &shop,
        &passenger,
        SHARE,
        consent::Channel::Partner,
        consent::Decision::Granted,
        &notice_version,
    )
    .await;
    eventually("the passenger's name is shared with the airline", || {
        let (profiles, airline, passenger) = (&profiles, &airline, &passenger);
        async move {
            (given_name_seen(profiles, airline, passenger).await == Ok("Grace".to_owned()))
                .then_some(())
        }
    })
    .await;

    // The same token is no use without the certificate, or with one of a CA not listed, or
    // in plaintext: each is turned away at the connection, before any call is read. (Which
    // side reports what first varies with timing; the platform's TLS tests check the alerts.)
    let refused = [
        ("no certificate", "https", pki.client(None, "-")),
        ("unlisted CA", "https", pki.client(Some(&pki.stranger), "x")),
        ("plaintext", "http", ClientTls::default()),
    ];
    for (who, scheme, tls) in refused {
        let profiles = channel(&journey, Member::Profiles, scheme, &tls);
        let error = given_name_seen(&profiles, &airline, &passenger)
            .await
            .unwrap_err();
        assert!(error.contains("tonic::transport::Error"), "{who}: {error}");
    }
    // And the suite still serves those it should.
    assert_eq!(
        given_name_seen(&profiles, &airline, &passenger).await,
        Ok("Grace".to_owned())
    );
    journey.stop().await;
}

async fn sync_passenger(profiles: &Channel, airline: &Caller) -> String {
    crate::support::logs::forbid("grace@example.com");
    crate::support::logs::forbid("Grace");
    let upserted = PartnerSyncClient::new(profiles.clone())
        .upsert_partner_profile(authorized(
            &airline.token(Member::Profiles).await,
            profiles::UpsertPartnerProfileRequest {
                external_id: "AF-1".to_owned(),
                identifiers: vec![profiles::NewIdentifier {
                    identifier: Some(email("grace@example.com")),
                    ..Default::default()
                }],
                attributes: Some(profiles::ProfileAttributes {
                    given_name: "Grace".to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    upserted.subject_id
}

/// The given name the airline reads of `subject`, or why the call failed.
async fn given_name_seen(
    profiles: &Channel,
    airline: &Caller,
    subject: &str,
) -> Result<String, String> {
    let profile = ProfilesClient::new(profiles.clone())
        .get_profile(reading(
            &airline.token(Member::Profiles).await,
            "partner_sharing",
            profiles::GetProfileRequest {
                subject: Some(by_id(subject)),
            },
        ))
        .await
        .map_err(|status| format!("{status:?}"))?
        .into_inner()
        .profile
        .unwrap();
    Ok(profile.attributes.unwrap_or_default().given_name)
}
