//! `ecrm up` killed outright (SIGKILL) while a data subject request is being carried out, as
//! it starts and strictly in the middle of its fan-out: the next `ecrm up` on the same folder
//! takes the request up where it was, completes it, and the erasure certificate it issues
//! verifies.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, PgConnection, QueryableByName, RunQueryDsl as _};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_testkit::TestDatabase;
use ring::signature::{ED25519, UnparsedPublicKey};
use support::up::{Up, authorized, channel_to, operator_token, printed_password, scratch};

/// A customer registered at profiles; their subject id.
async fn customer(up: &Up, password: &str) -> String {
    let token = operator_token(
        up.endpoints["identity"],
        "admin",
        password,
        &["profiles.write"],
        "profiles",
    )
    .await
    .unwrap();
    profiles::profiles_client::ProfilesClient::new(channel_to(up.endpoints["profiles"]).await)
        .upsert_profile(authorized(
            &token,
            profiles::UpsertProfileRequest {
                identifiers: vec![profiles::NewIdentifier {
                    identifier: Some(common::Identifier {
                        kind: common::IdentifierKind::Email.into(),
                        value: "crash@example.com".to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                source: "web_shop".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
        .subject_id
}

async fn requests(
    up: &Up,
    password: &str,
) -> (DataSubjectRequestsClient<tonic::transport::Channel>, String) {
    let officer = operator_token(
        up.endpoints["identity"],
        "admin",
        password,
        &["dsr.submit", "dsr.manage"],
        "consent",
    )
    .await
    .unwrap();
    (
        DataSubjectRequestsClient::new(channel_to(up.endpoints["consent"]).await),
        officer,
    )
}

/// Submits an erasure of `subject`, verifies the requester and approves it: the fan-out
/// starts. The request's id.
async fn approved_erasure(up: &Up, password: &str, subject: &str) -> String {
    let (mut dsr, officer) = requests(up, password).await;
    let id = dsr
        .submit_request(authorized(
            &officer,
            consent::SubmitRequestRequest {
                subject: Some(common::SubjectRef {
                    subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
                }),
                r#type: consent::RequestType::Erasure.into(),
                channel: consent::RequestChannel::Email.into(),
                received_at: None,
                corrections: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap()
        .request_id;
    dsr.verify_requester(authorized(
        &officer,
        consent::VerifyRequesterRequest {
            request_id: id.clone(),
            reason: "replied from the address on file".to_owned(),
        },
    ))
    .await
    .unwrap();
    dsr.approve_request(authorized(
        &officer,
        consent::ApproveRequestRequest {
            request_id: id.clone(),
        },
    ))
    .await
    .unwrap();
    id
}

/// Waits until request `id` is completed, then checks its certificate: its Ed25519 signature,
/// the request and subject it names, and a receipt from each of the four services.
async fn completed_with_a_valid_certificate(up: &Up, password: &str, id: &str, subject: &str) {
    let (mut dsr, officer) = requests(up, password).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let request = dsr
            .get_request(authorized(
                &officer,
                consent::GetRequestRequest {
                    request_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .request
            .unwrap();
        if request.status() == consent::RequestStatus::Completed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not carried out after the restart: {request:?}\n{}",
            up.report()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let certificate = dsr
        .get_erasure_certificate(authorized(
            &officer,
            consent::GetErasureCertificateRequest {
                request_id: id.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    UnparsedPublicKey::new(&ED25519, hex::decode(&certificate.public_key).unwrap())
        .verify(
            certificate.certificate_json.as_bytes(),
            &hex::decode(&certificate.signature).unwrap(),
        )
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(&certificate.certificate_json).unwrap();
    assert_eq!(document["request_id"], id);
    assert_eq!(document["subject_id"], subject);
    let mut services: Vec<&str> = document["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|receipt| receipt["service"].as_str().unwrap())
        .collect();
    services.sort_unstable();
    assert_eq!(
        services,
        ["consent", "outbound", "profiles", "segmentation"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_cut_short_by_a_crash_completes_after_a_restart_and_its_certificate_verifies() {
    let scratch = scratch();
    let up = Up::start(scratch.path(), &["--base-port", "0"]);
    let password = printed_password(&up).unwrap();
    let subject = customer(&up, &password).await;
    let id = approved_erasure(&up, &password, &subject).await;
    // The fan-out starts on approval: killed as it begins, nothing is shut down cleanly.
    up.crash();

    let up = Up::start(scratch.path(), &["--base-port", "0"]);
    completed_with_a_valid_certificate(&up, &password, &id, &subject).await;
    up.stop(nix::sys::signal::Signal::SIGTERM);
}

/// The erasure's tasks: how many are done, and whether segmentation's erase has been
/// claimed (attempted) without being done.
fn fan_out(conn: &mut PgConnection, id: &str) -> (i64, bool) {
    #[derive(QueryableByName)]
    struct Progress {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        done: i64,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        segmentation_running: bool,
    }
    let progress: Progress = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE state = 'done') AS done, \
                bool_or(service = 'segmentation' AND action = 'erase' \
                        AND state = 'pending' AND attempts > 0) AS segmentation_running \
         FROM consent.request_tasks WHERE request_id = $1::uuid",
    )
    .bind::<diesel::sql_types::Text, _>(id)
    .get_result(conn)
    .unwrap();
    (progress.done, progress.segmentation_running)
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_in_the_middle_of_an_erasure_fan_out_the_next_start_completes_it() {
    let database = TestDatabase::empty().await;
    let url = database.admin_url();
    let scratch = scratch();
    let args = ["--database-url", url.expose(), "--base-port", "0"];
    let up = Up::start(scratch.path(), &args);
    let password = printed_password(&up).unwrap();
    let subject = customer(&up, &password).await;

    // Segmentation cannot erase while the test holds its customers table: the fan-out
    // stops there, part done, with segmentation's call under way.
    let mut holder = PgConnection::establish(url.expose()).unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE segmentation.customers IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let id = approved_erasure(&up, &password, &subject).await;
    let mut watcher = PgConnection::establish(url.expose()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done_before = loop {
        let (done, segmentation_running) = fan_out(&mut watcher, &id);
        if segmentation_running {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "the fan-out never reached segmentation"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    up.crash();
    holder.batch_execute("ROLLBACK").unwrap();
    let (done_at_kill, _) = fan_out(&mut watcher, &id);
    assert!(
        done_before <= done_at_kill && done_at_kill < 8,
        "{done_at_kill} of 8 tasks done"
    );

    // The dead process's claims lapse (30 s) and the next start carries the rest out.
    let up = Up::start(scratch.path(), &args);
    completed_with_a_valid_certificate(&up, &password, &id, &subject).await;
    let (done, _) = fan_out(&mut watcher, &id);
    assert_eq!(done, 8);
    up.stop(nix::sys::signal::Signal::SIGTERM);
}
