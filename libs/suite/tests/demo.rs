//! `ecrm up --demo`'s data, seeded through the services' APIs into a running suite.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::collections::BTreeSet;
use std::sync::Mutex;

use ecrm_auth::{Scope, Scopes};
use ecrm_client::proto::consent::v1 as consent;
use ecrm_client::{Client, Credentials, Endpoints, Service};
use ecrm_suite::demo::{self, Progress};
use ecrm_suite::{Member, Suite, SuiteKeys, SuiteOptions};
use ecrm_testkit::TestDatabase;

/// Every stage with its announced total and the steps reported done.
#[derive(Default)]
struct Recorded(Mutex<Vec<(String, u64, u64)>>);

impl Progress for Recorded {
    fn stage(&self, name: &str, total: u64) {
        self.0.lock().unwrap().push((name.to_owned(), total, 0));
    }

    fn advance(&self, steps: u64) {
        self.0.lock().unwrap().last_mut().unwrap().2 += steps;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_seeds_customers_history_consents_a_partner_and_requests_due_at_different_dates() {
    let database = TestDatabase::empty().await;
    let prefix = format!(
        "ecrm_demo_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let options = SuiteOptions {
        role_prefix: prefix.clone(),
        ..SuiteOptions::new(database.admin_url(), SuiteKeys::generate().unwrap())
    };
    let suite = Suite::start(options).await.unwrap();

    let progress = Recorded::default();
    let seeded = demo::seed(&suite, 150, &progress).await.unwrap();
    assert_eq!(seeded.customers, 150);
    assert!(seeded.orders > 150, "{seeded:?}");
    assert_eq!(seeded.open_requests, 5);
    let stages = progress.0.lock().unwrap().clone();
    let names: Vec<&str> = stages.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["customers", "bookings and browsing", "consents"]);
    for (name, total, done) in &stages {
        assert!(*total > 0 && total == done, "{name}: {done} of {total}");
    }

    // The partner airline logs in with what was printed once.
    let endpoints = Endpoints::identity(suite.url(Member::Identity))
        .with(Service::Profiles, suite.url(Member::Profiles))
        .with(Service::Consent, suite.url(Member::Consent));
    let partner = Client::connect(
        endpoints.clone(),
        Credentials::service_account(seeded.partner_client_id, seeded.partner_client_secret),
    )
    .unwrap();
    partner
        .tokens()
        .token("profiles", &["profiles.read".to_owned()])
        .await
        .unwrap();

    // A compliance officer finds the open requests, due on different days.
    let (id, secret) = suite
        .internal_account("demo test", Scopes::empty().with(Scope::DsrManage))
        .await
        .unwrap();
    let officer = Client::connect(
        endpoints,
        Credentials::service_account(id, secret.expose().clone()),
    )
    .unwrap();
    let open = officer
        .requests()
        .unwrap()
        .list_requests(consent::ListRequestsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(open.len(), 5);
    let due: BTreeSet<_> = open
        .iter()
        .filter_map(|r| r.due_on.map(|d| (d.year, d.month, d.day)))
        .collect();
    assert!(due.len() >= 3, "{due:?}");

    suite.stop().await.unwrap();
    drop(database);
    ecrm_suite::drop_roles(
        &ecrm_testkit::PgServer::get()
            .unwrap()
            .admin_url()
            .with_database("postgres"),
        &prefix,
    )
    .unwrap();
}
