//! Two replicas of every service on one database, as a deployment scales them: the work of
//! queues (a campaign's messages), sagas (an erasure's tasks) and change-feed followers (orders
//! projected into segmentation) is done once, whichever replica takes it.

use std::time::Duration;

use ecrm_suite::Member;

use crate::customer::erasure;
use crate::support::customers::{OrderSpec, record_orders_at};
use crate::support::sql::count;
use crate::support::{DEADLINE, Journey, campaigns, eventually};

const READERS: usize = 30;
/// Orders each reader places, half through each replica of profiles.
const ORDERS_EACH: usize = 2;

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_of_every_service_on_one_database_do_each_piece_of_work_once() {
    let journey = Journey::start().await;
    let replicas = journey.start_replicas().await;
    let admin = &journey.admin;
    let readers = campaigns::newsletter_readers(&journey, READERS).await;

    // Change feeds: orders recorded at both profiles replicas; segmentation's and consent's
    // followers run in both replicas, and each order is counted once.
    for (n, profiles) in [
        journey.channel(Member::Profiles),
        replicas.channel(Member::Profiles).unwrap(),
    ]
    .into_iter()
    .enumerate()
    {
        let order_ids: Vec<String> = readers
            .iter()
            .map(|reader| format!("{reader}-{n}"))
            .collect();
        let orders: Vec<OrderSpec<'_>> = readers
            .iter()
            .zip(&order_ids)
            .map(|(reader, order_id)| OrderSpec {
                subject: reader,
                order_id,
                days_ago: 3,
                amount_minor: 2_500,
            })
            .collect();
        record_orders_at(profiles, admin, &orders).await;
    }
    let expected = (READERS * ORDERS_EACH) as i64;
    let url = journey.admin_url().clone();
    eventually("every order projected into segmentation", || {
        let url = url.clone();
        async move {
            let counted = count(
                url,
                "SELECT COALESCE(sum(order_count), 0)::bigint AS count FROM segmentation.customers",
            )
            .await;
            (counted >= expected).then_some(())
        }
    })
    .await;
    // Followers a step behind would double it now, if two of them took the same changes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_customer = "SELECT count(*) AS count FROM segmentation.customers \
                        WHERE order_count <> 2 OR monetary_minor <> 5000";
    assert_eq!(count(url.clone(), per_customer).await, 0);
    assert_eq!(
        count(
            url.clone(),
            "SELECT count(*) AS count FROM consent.purchases"
        )
        .await,
        READERS as i64
    );

    // A queue: a campaign both outbound replicas send; every reader gets one mail.
    let campaign = campaigns::newsletter(&journey, &readers, 0).await;
    campaigns::start(&journey, admin, &campaign).await;
    let stats = campaigns::completed(&journey, admin, &campaign, DEADLINE).await;
    assert_eq!(
        (stats.recipients, stats.sent, stats.failed),
        (READERS as u64, READERS as u64, 0),
        "{stats:?}"
    );
    campaigns::assert_one_mail_each(&journey, READERS);

    // A saga: an erasure whose tasks both consent replicas' workers look for. Each task runs
    // once, and the certificate verifies.
    let request = erasure::verified_and_approved(&journey, admin, "reader0@example.com").await;
    assert_eq!(request.subject_id, readers[0]);
    erasure::completed(&journey, admin, &request.request_id).await;
    erasure::certificate(&journey, admin, &request.request_id).await;
    assert_eq!(
        count(
            url.clone(),
            "SELECT count(*) AS count FROM consent.request_tasks WHERE attempts <> 1"
        )
        .await,
        0,
        "a task of the erasure ran more than once"
    );
    assert_eq!(
        count(
            url,
            "SELECT count(*) AS count FROM consent.request_tasks WHERE completed_at IS NOT NULL"
        )
        .await,
        8
    );

    replicas.stop().await.unwrap();
    journey.stop().await;
}
