//! The suite through faults of what it stands on: its PostgreSQL restarted under load. Each
//! test runs the suite on a private cluster of its own (the machine's PostgreSQL binaries, in
//! a throwaway folder, on loopback) so that it can stop and start it.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::collections::HashSet;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use ecrm_localpg::{ClusterOptions, LocalCluster, PgBinaries};
use ecrm_platform::DatabaseUrl;
use ecrm_proto::ecrm::identity::v1 as identity;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
use ecrm_suite::Member;
use support::customers::{by_id, customer};
use support::sql::{count, rows};
use support::{Journey, authorized, campaigns};

/// The suite's database on the private cluster.
const DATABASE: &str = "ecrm";
/// Interactions in each batch the shop sends.
const BATCH: usize = 20;

/// A PostgreSQL cluster of this test alone, stopped when dropped.
struct PrivateServer {
    cluster: LocalCluster,
    _root: tempfile::TempDir,
}

impl PrivateServer {
    /// Initialises and starts a throwaway cluster, with the suite's database in it.
    async fn start() -> Self {
        tokio::task::spawn_blocking(|| {
            // In /tmp, which the `postgres` user can traverse when tests run as root.
            let root = tempfile::Builder::new()
                .prefix("ecrm-faults-")
                .permissions(Permissions::from_mode(0o700))
                .tempdir_in("/tmp")
                .unwrap();
            let options = ClusterOptions {
                ephemeral: true,
                ..ClusterOptions::default()
            };
            let mut cluster =
                LocalCluster::init_or_open(PgBinaries::find().unwrap(), root.path(), options)
                    .unwrap();
            cluster.start(0).unwrap();
            let server = Self {
                cluster,
                _root: root,
            };
            let mut conn = PgConnection::establish(server.url("postgres").expose()).unwrap();
            diesel::sql_query(format!("CREATE DATABASE {DATABASE}"))
                .execute(&mut conn)
                .unwrap();
            server
        })
        .await
        .unwrap()
    }

    fn url(&self, database: &str) -> DatabaseUrl {
        self.cluster
            .superuser_url(database)
            .unwrap()
            .as_str()
            .parse()
            .unwrap()
    }

    /// Stops the server (open sessions are cut), keeps it down for `down`, and starts it again
    /// on the same port.
    async fn restart(&mut self, down: Duration) {
        let port = self.cluster.port().unwrap();
        tokio::task::block_in_place(|| self.cluster.stop()).unwrap();
        tokio::time::sleep(down).await;
        tokio::task::block_in_place(|| self.cluster.start(port)).unwrap();
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        // Nothing more can be done from a destructor, possibly running during a panic.
        let _ = self.cluster.stop();
    }
}

fn order(event_id: String, subject_id: &str, n: usize) -> profiles::Interaction {
    let money = |amount_minor| ecrm_proto::ecrm::common::v1::Money {
        amount_minor,
        currency: "EUR".to_owned(),
    };
    profiles::Interaction {
        event_id,
        subject: Some(by_id(subject_id)),
        channel: profiles::Channel::Web.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 60,
            nanos: 0,
        }),
        details: Some(profiles::interaction::Details::Order(profiles::Order {
            order_id: format!("order-{n}"),
            total: Some(money(1_000)),
            line_items: vec![profiles::LineItem {
                product_id: format!("sku-{}", n % 7),
                category: "shoes".to_owned(),
                quantity: 1,
                unit_price: Some(money(1_000)),
            }],
        })),
    }
}

/// The event ids of every stored interaction.
async fn stored_events(url: DatabaseUrl) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Event {
        #[diesel(sql_type = diesel::sql_types::Text)]
        event_id: String,
    }
    rows::<Event>(url, "SELECT event_id FROM profiles.interactions")
        .await
        .into_iter()
        .map(|event| event.event_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_restart_during_ingest_loses_no_acknowledged_interaction() {
    let mut server = PrivateServer::start().await;
    let journey = Journey::start_in(server.url(DATABASE)).await;
    let shop = journey
        .admin
        .create_account(
            "shop",
            identity::PrincipalKind::Internal,
            "",
            &["profiles.write", "profiles.read", "events.write"],
        )
        .await;
    let subject = customer(&journey, &shop, "ingrid@example.com", "Ingrid").await;
    let token = shop.token(Member::Profiles).await;

    // The shop sends batch after batch, each until it is acknowledged (a retry of a batch is
    // idempotent: same event ids), while the database goes down and comes back.
    let writer = {
        let channel = journey.channel(Member::Profiles);
        let subject = subject.clone();
        tokio::spawn(async move {
            let mut client = InteractionsClient::new(channel);
            let mut acknowledged = Vec::new();
            let mut refused = 0_usize;
            let started = Instant::now();
            let mut batch = 0;
            // Batches before, during and well after the outage.
            while started.elapsed() < Duration::from_secs(6) || batch < 60 {
                let events: Vec<profiles::Interaction> = (0..BATCH)
                    .map(|i| order(format!("evt-{batch}-{i}"), &subject, batch * BATCH + i))
                    .collect();
                loop {
                    let request = profiles::RecordInteractionsRequest {
                        interactions: events.clone(),
                    };
                    let sent = client
                        .record_interactions(authorized(&token, futures::stream::iter([request])))
                        .await;
                    match sent {
                        Ok(response) => {
                            let response = response.into_inner();
                            assert_eq!(
                                response.recorded + response.duplicates,
                                BATCH as u64,
                                "{response:?}"
                            );
                            acknowledged.extend(events.iter().map(|e| e.event_id.clone()));
                            break;
                        }
                        Err(status) => {
                            refused += 1;
                            assert!(
                                started.elapsed() < Duration::from_secs(60),
                                "the service did not recover: {status:?}"
                            );
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                batch += 1;
            }
            (acknowledged, refused)
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart(Duration::from_secs(1)).await;
    let (acknowledged, refused) = writer.await.unwrap();

    assert!(
        refused > 0,
        "no call met the outage: the test proved nothing"
    );
    let stored = stored_events(server.url(DATABASE)).await;
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(
        unique.len(),
        stored.len(),
        "an interaction was stored twice"
    );
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|event| !unique.contains(event))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert_eq!(stored.len(), acknowledged.len());
    // Segmentation's feed follower came back by itself too, and projected each order once.
    let orders = i64::try_from(acknowledged.len()).unwrap();
    support::eventually("segmentation projecting every order", || {
        let url = server.url(DATABASE);
        async move {
            let projected = count(url, "SELECT count(*) AS count FROM segmentation.orders").await;
            assert!(
                projected <= orders,
                "{projected} orders projected of {orders}"
            );
            (projected == orders).then_some(())
        }
    })
    .await;
    journey.stop().await;
}

/// Customers the campaign mails.
const RECIPIENTS: usize = 60;

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_restart_during_a_campaign_sends_every_message_once() {
    let mut server = PrivateServer::start().await;
    let journey = Journey::start_in(server.url(DATABASE)).await;
    let subjects = campaigns::newsletter_readers(&journey, RECIPIENTS).await;
    // Slow enough for the restart to fall in the middle of the sending.
    let campaign = campaigns::newsletter(&journey, &subjects, 20).await;
    campaigns::start(&journey, &journey.admin, &campaign).await;

    // Down once the first mails are out, up again a second later.
    journey.smtp.wait_for(5, support::DEADLINE).await;
    server.restart(Duration::from_secs(1)).await;
    let sent_before_the_end = journey.smtp.messages().len();
    assert!(
        sent_before_the_end < RECIPIENTS,
        "the campaign ended before the restart: the test proved nothing"
    );

    // Messages the gate could not clear while consent and profiles had no database wait a
    // second (the journeys' `--gate-retry-secs`) before trying again.
    let stats =
        campaigns::completed(&journey, &journey.admin, &campaign, Duration::from_secs(60)).await;
    assert_eq!(
        (stats.recipients, stats.sent, stats.blocked, stats.failed),
        (RECIPIENTS as u64, RECIPIENTS as u64, 0, 0),
        "{stats:?}"
    );
    campaigns::assert_one_mail_each(&journey, RECIPIENTS);
    journey.stop().await;
}
