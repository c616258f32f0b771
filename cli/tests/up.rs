//! `ecrm up` as its user runs it: the real binary, a real PostgreSQL, real gRPC clients.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ecrm_localpg::process_is_alive;
use ecrm_testkit::TestDatabase;
use nix::sys::signal::Signal;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use support::up::{
    Up, authorized, channel_to, ecrm_up, operator_token, printed_password, scratch,
    stop_left_cluster,
};

async fn assert_serving(name: &str, addr: SocketAddr) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{name} at {addr}: {e}"));
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving, "{name}");

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("{name}: no service list from reflection");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "grpc.health.v1.Health"),
        "{name}: {list:?}"
    );
}

/// Logs in as `username` at the identity endpoint and makes an authenticated call with the token.
async fn log_in(identity: SocketAddr, username: &str, password: &str) -> Result<(), tonic::Status> {
    use ecrm_proto::ecrm::identity::v1 as pb;
    let token = operator_token(
        identity,
        username,
        password,
        &["identity.admin"],
        "identity",
    )
    .await?;
    let keys = pb::signing_keys_client::SigningKeysClient::new(channel_to(identity).await)
        .list_signing_keys(authorized(&token, pb::ListSigningKeysRequest {}))
        .await?
        .into_inner();
    assert_eq!(keys.keys.len(), 2);
    Ok(())
}

/// With a token from identity, defines a purpose at consent on the first run and lists it on
/// the second.
async fn consent_keeps_a_purpose(up: &Up, password: &str, first_run: bool) {
    use ecrm_proto::ecrm::common::v1 as common;
    use ecrm_proto::ecrm::consent::v1 as pb;
    let token = operator_token(
        up.endpoints["identity"],
        "admin",
        password,
        &["consent.read", "consent.write"],
        "consent",
    )
    .await
    .unwrap();
    let mut purposes =
        pb::purposes_client::PurposesClient::new(channel_to(up.endpoints["consent"]).await);
    if first_run {
        purposes
            .define_purpose(authorized(
                &token,
                pb::DefinePurposeRequest {
                    purpose: Some(pb::Purpose {
                        key: "newsletter".to_owned(),
                        description: "The weekly newsletter".to_owned(),
                        lawful_basis: common::LawfulBasis::Consent.into(),
                        channels: vec![pb::Channel::Email.into()],
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap_or_else(|status| panic!("{status:?}\n{}", up.report()));
    }
    let listed = purposes
        .list_purposes(authorized(&token, pb::ListPurposesRequest::default()))
        .await
        .unwrap_or_else(|status| panic!("{status:?}\n{}", up.report()))
        .into_inner();
    let keys: Vec<&str> = listed.purposes.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"newsletter"), "{keys:?}");
    // Consent's own, defined at startup since it is wired to outbound.
    assert!(keys.contains(&"dsr_verification"), "{keys:?}");
}

/// With a token from identity, stores a customer at profiles on the first run and finds it,
/// decrypted, on the second: profiles trusts identity's keys and keeps its own master key.
async fn profiles_keep_a_customer(up: &Up, password: &str, first_run: bool) {
    use ecrm_proto::ecrm::common::v1 as common;
    use ecrm_proto::ecrm::profiles::v1 as pb;
    let token = operator_token(
        up.endpoints["identity"],
        "admin",
        password,
        &["profiles.read", "profiles.write"],
        "profiles",
    )
    .await
    .unwrap();
    let mut profiles =
        pb::profiles_client::ProfilesClient::new(channel_to(up.endpoints["profiles"]).await);
    let email = common::Identifier {
        kind: common::IdentifierKind::Email.into(),
        value: "Ada@Example.com".to_owned(),
        ..Default::default()
    };
    if first_run {
        let created = profiles
            .upsert_profile(authorized(
                &token,
                pb::UpsertProfileRequest {
                    identifiers: vec![pb::NewIdentifier {
                        identifier: Some(email.clone()),
                        ..Default::default()
                    }],
                    attributes: Some(pb::ProfileAttributes {
                        given_name: "Ada".to_owned(),
                        ..Default::default()
                    }),
                    source: "web_shop".to_owned(),
                    merge_if_needed: false,
                },
            ))
            .await
            .unwrap_or_else(|status| panic!("{status:?}\n{}", up.report()))
            .into_inner();
        assert!(created.created);
    }
    let mut request = authorized(
        &token,
        pb::GetProfileRequest {
            subject: Some(common::SubjectRef {
                subject: Some(common::subject_ref::Subject::Identifier(email)),
            }),
        },
    );
    request
        .metadata_mut()
        .insert("x-ecrm-purpose", "customer_service".parse().unwrap());
    let found = profiles
        .get_profile(request)
        .await
        .unwrap_or_else(|status| panic!("{status:?}\n{}", up.report()))
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(found.attributes.unwrap().given_name, "Ada");
    // Without a token, nothing.
    let refused = profiles
        .get_profile(pb::GetProfileRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

/// The password in the "shown once" line, if the run printed one.
/// Across the running suite, with real accounts and tokens: a partner syncs a customer, the
/// customer agrees to share with it at consent, and the partner's pull at profiles returns the
/// customer with the fields the consent covers.
async fn a_partner_receives_what_a_customer_shares(up: &Up, password: &str) {
    use ecrm_proto::ecrm::common::v1 as common;
    use ecrm_proto::ecrm::consent::v1 as consent;
    use ecrm_proto::ecrm::identity::v1 as identity;
    use ecrm_proto::ecrm::profiles::v1 as profiles;
    let id = up.endpoints["identity"];
    let admin = operator_token(id, "admin", password, &["identity.admin"], "identity")
        .await
        .unwrap();
    let created =
        identity::service_accounts_client::ServiceAccountsClient::new(channel_to(id).await)
            .create_service_account(authorized(
                &admin,
                identity::CreateServiceAccountRequest {
                    display_name: "Air One".to_owned(),
                    kind: identity::PrincipalKind::Partner.into(),
                    partner_id: "air-one".to_owned(),
                    scopes: vec!["profiles.read".to_owned(), "profiles.write".to_owned()],
                    secret_expires_at: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
    let partner = identity::tokens_client::TokensClient::new(channel_to(id).await)
        .issue_token(identity::IssueTokenRequest {
            grant: Some(identity::issue_token_request::Grant::ClientCredentials(
                identity::ClientCredentials {
                    client_id: created.account.unwrap().client_id,
                    client_secret: created.client_secret,
                },
            )),
            scopes: vec!["profiles.read".to_owned(), "profiles.write".to_owned()],
            audience: "profiles".to_owned(),
            start_session: false,
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let profiles_channel = channel_to(up.endpoints["profiles"]).await;
    let mut sync = profiles::partner_sync_client::PartnerSyncClient::new(profiles_channel);
    let subject = sync
        .upsert_partner_profile(authorized(
            &partner,
            profiles::UpsertPartnerProfileRequest {
                external_id: "AF-1".to_owned(),
                identifiers: vec![],
                attributes: Some(profiles::ProfileAttributes {
                    given_name: "Grace".to_owned(),
                    family_name: "Hopper".to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("{status:?}\n{}", up.report()))
        .into_inner()
        .subject_id;

    let officer = operator_token(
        id,
        "admin",
        password,
        &["consent.read", "consent.write"],
        "consent",
    )
    .await
    .unwrap();
    let consent_channel = channel_to(up.endpoints["consent"]).await;
    let mut purposes = consent::purposes_client::PurposesClient::new(consent_channel.clone());
    purposes
        .define_purpose(authorized(
            &officer,
            consent::DefinePurposeRequest {
                purpose: Some(consent::Purpose {
                    key: "share:air-one".to_owned(),
                    description: "Sharing with Air One".to_owned(),
                    lawful_basis: common::LawfulBasis::Consent.into(),
                    channels: vec![consent::Channel::Partner.into()],
                    data_categories: vec!["given_name".to_owned()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let notice = purposes
        .publish_notice(authorized(
            &officer,
            consent::PublishNoticeRequest {
                purpose_key: "share:air-one".to_owned(),
                text: "We share your first name with Air One.".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version;
    consent::consents_client::ConsentsClient::new(consent_channel)
        .record_consent(authorized(
            &officer,
            consent::RecordConsentRequest {
                subject_id: subject.clone(),
                purpose_key: "share:air-one".to_owned(),
                decision: consent::Decision::Granted.into(),
                channel: consent::Channel::Partner.into(),
                collection_point: "booking".to_owned(),
                notice_version: notice,
                ..Default::default()
            },
        ))
        .await
        .unwrap();

    // The feed shows a change once every older transaction has ended: pull until it does.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut cursor = String::new();
    loop {
        let page = sync
            .pull_changes(authorized(
                &partner,
                profiles::PullChangesRequest {
                    cursor: cursor.clone(),
                    max_changes: 0,
                },
            ))
            .await
            .unwrap_or_else(|status| panic!("{status:?}\n{}", up.report()))
            .into_inner();
        if let Some(shared) = page.profiles.first() {
            assert_eq!(shared.subject_id, subject);
            assert_eq!(shared.external_id, "AF-1");
            let attributes = shared.attributes.clone().unwrap();
            assert_eq!(attributes.given_name, "Grace");
            assert_eq!(attributes.family_name, "", "not covered by the consent");
            a_request_is_carried_out_everywhere(up, password, &subject).await;
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing shared:\n{}",
            up.report()
        );
        cursor = page.next_cursor;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An access request, approved by the admin, is carried out at profiles and consent.
async fn a_request_is_carried_out_everywhere(up: &Up, password: &str, subject: &str) {
    use ecrm_proto::ecrm::common::v1 as common;
    use ecrm_proto::ecrm::consent::v1 as consent;
    let officer = operator_token(
        up.endpoints["identity"],
        "admin",
        password,
        &["dsr.submit", "dsr.manage"],
        "consent",
    )
    .await
    .unwrap();
    let mut requests = consent::data_subject_requests_client::DataSubjectRequestsClient::new(
        channel_to(up.endpoints["consent"]).await,
    );
    let submitted = requests
        .submit_request(authorized(
            &officer,
            consent::SubmitRequestRequest {
                subject: Some(common::SubjectRef {
                    subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
                }),
                r#type: consent::RequestType::Access.into(),
                channel: consent::RequestChannel::Email.into(),
                received_at: None,
                corrections: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    // Consent asked outbound to email the requester a code, with its own account's
    // `outbound.send`; outbound has no email channel here, and the request says so.
    assert!(
        submitted
            .verification_error
            .ends_with("the email channel is not configured on this service"),
        "{submitted:?}"
    );
    let id = submitted.request_id;
    requests
        .verify_requester(authorized(
            &officer,
            consent::VerifyRequesterRequest {
                request_id: id.clone(),
                reason: "replied from the address on file".to_owned(),
            },
        ))
        .await
        .unwrap();
    requests
        .approve_request(authorized(
            &officer,
            consent::ApproveRequestRequest {
                request_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = requests
            .get_request(authorized(
                &officer,
                consent::GetRequestRequest {
                    request_id: id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .request
            .unwrap();
        if request.status() == consent::RequestStatus::Completed {
            let mut services: Vec<&str> =
                request.tasks.iter().map(|t| t.service.as_str()).collect();
            services.sort_unstable();
            assert_eq!(
                services,
                ["consent", "outbound", "profiles", "segmentation"]
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not carried out: {request:?}\n{}",
            up.report()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_starts_from_nothing_serves_every_port_and_ctrl_c_stops_everything() {
    let scratch = scratch();
    let mut password = None;

    for run in ["first run, initialising", "second run, reusing the cluster"] {
        let up = Up::start(scratch.path(), &["--base-port", "0"]);
        assert_eq!(
            up.endpoints.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "consent",
                "identity",
                "outbound",
                "profiles",
                "segmentation"
            ],
            "{run}: {}",
            up.report()
        );
        for (name, addr) in &up.endpoints {
            assert_serving(name, *addr).await;
        }
        // The first operator is printed on the first run only, and logs in on both.
        match (run, printed_password(&up)) {
            ("first run, initialising", Some(printed)) => password = Some(printed),
            ("second run, reusing the cluster", None) => {}
            (run, printed) => panic!("{run}: unexpected credential line {printed:?}"),
        }
        log_in(
            up.endpoints["identity"],
            "admin",
            password.as_deref().unwrap(),
        )
        .await
        .unwrap_or_else(|status| panic!("{run}: {status:?}"));
        profiles_keep_a_customer(
            &up,
            password.as_deref().unwrap(),
            run == "first run, initialising",
        )
        .await;
        consent_keeps_a_purpose(
            &up,
            password.as_deref().unwrap(),
            run == "first run, initialising",
        )
        .await;
        if run == "first run, initialising" {
            a_partner_receives_what_a_customer_shares(&up, password.as_deref().unwrap()).await;
        }
        let postmaster = up.postmaster_pid().unwrap();
        assert!(process_is_alive(postmaster));
        let endpoints = up.endpoints.clone();

        up.stop(Signal::SIGINT);

        assert!(
            !process_is_alive(postmaster),
            "{run}: postgresql {postmaster} left running"
        );
        for (name, addr) in endpoints {
            assert!(
                tokio::net::TcpStream::connect(addr).await.is_err(),
                "{run}: {name} still listening"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_up_on_the_same_folder_is_refused_and_the_first_keeps_running() {
    let scratch = scratch();
    let first = Up::start(scratch.path(), &["--base-port", "0"]);
    let postmaster = first.postmaster_pid().unwrap();

    let second = ecrm_up(scratch.path(), &["--base-port", "0"])
        .stderr(std::fs::File::create(scratch.path().join("second.log")).unwrap())
        .output()
        .unwrap();

    assert_eq!(second.status.code(), Some(1));
    let stderr = std::fs::read_to_string(scratch.path().join("second.log")).unwrap();
    assert!(stderr.contains("another `ecrm up` is running"), "{stderr}");
    assert_eq!(first.postmaster_pid(), Some(postmaster));
    for (name, addr) in &first.endpoints {
        assert_serving(name, *addr).await;
    }
    first.stop(Signal::SIGINT);
    assert!(!process_is_alive(postmaster));
}

#[derive(QueryableByName, Debug)]
struct Owned {
    #[diesel(sql_type = Text)]
    schema: String,
    #[diesel(sql_type = Text)]
    owner: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn up_with_a_database_url_creates_each_schema_and_role_there() {
    let database = TestDatabase::empty().await;
    let scratch = scratch();
    let url = database.admin_url();

    let up = Up::start(
        scratch.path(),
        &["--database-url", url.expose(), "--base-port", "0"],
    );
    assert!(
        up.postmaster_pid().is_none(),
        "a private cluster was started"
    );
    for (name, addr) in &up.endpoints {
        assert_serving(name, *addr).await;
    }
    up.stop(Signal::SIGTERM);

    let mut conn = PgConnection::establish(url.expose()).unwrap();
    let owned: Vec<Owned> = diesel::sql_query(
        "SELECT nspname::text AS schema, nspowner::regrole::text AS owner FROM pg_namespace \
         WHERE nspname IN ('identity', 'profiles', 'consent', 'segmentation', 'outbound') \
         ORDER BY 1",
    )
    .load(&mut conn)
    .unwrap();
    let owned: Vec<(String, String)> = owned.into_iter().map(|o| (o.schema, o.owner)).collect();
    // The identity schema was migrated too.
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let keys: Count = diesel::sql_query("SELECT count(*) AS count FROM identity.signing_keys")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(keys.count, 2);
    assert_eq!(
        owned,
        [
            ("consent", "ecrm_consent"),
            ("identity", "ecrm_identity"),
            ("outbound", "ecrm_outbound"),
            ("profiles", "ecrm_profiles"),
            ("segmentation", "ecrm_segmentation"),
        ]
        .map(|(s, o)| (s.to_owned(), o.to_owned()))
    );
}

#[test]
fn up_without_postgresql_binaries_says_what_to_install() {
    let scratch = scratch();
    let empty = scratch.path().join("no-binaries");
    std::fs::create_dir(&empty).unwrap();

    let status = ecrm_up(scratch.path(), &["--base-port", "0"])
        .env("ECRM_PG_BINDIR", &empty)
        .status()
        .unwrap();

    assert_eq!(status.code(), Some(1));
    let stderr = std::fs::read_to_string(scratch.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(
        stderr.contains("--database-url") || stderr.contains("database url"),
        "{stderr}"
    );
}

#[test]
fn up_on_a_taken_port_says_so_and_leaves_no_postgresql_running() {
    let scratch = scratch();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();

    let output = ecrm_up(scratch.path(), &["--base-port", &port.to_string()])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = std::fs::read_to_string(scratch.path().join("stderr.log")).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port} for identity")),
        "{stderr}"
    );
    assert!(stderr.contains("--base-port"), "{stderr}");
    assert!(
        !scratch.path().join(".ecrm/pg/data/postmaster.pid").exists(),
        "postgresql left running"
    );
    stop_left_cluster(scratch.path());
}

#[test]
fn up_writes_one_json_object_per_log_line_with_ecrm_log_format_json() {
    let scratch = scratch();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    // An OTLP endpoint nobody listens on: export failures must not stop the command.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    let output = ecrm_up(scratch.path(), &["--base-port", &port])
        .env("ECRM_LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{closed}"))
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = std::fs::read_to_string(scratch.path().join("stderr.log")).unwrap();
    let (logs, last) = stderr.trim_end().rsplit_once('\n').unwrap();
    assert!(last.starts_with("error: cannot listen"), "{last}");
    let mut messages = Vec::new();
    for line in logs.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not json ({e}): {line}"));
        assert!(event["level"].is_string(), "{line}");
        messages.push(event["message"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        messages.iter().any(|m| m == "postgresql started"),
        "{messages:?}"
    );
    stop_left_cluster(scratch.path());
}

#[test]
fn a_master_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = scratch();
    let data = scratch.path().join(".ecrm");
    std::fs::create_dir(&data).unwrap();
    let key = data.join("identity-master.key");
    std::fs::write(&key, "c2VjcmV0LW1hc3Rlci1rZXktdGhhdC1tdXN0LWhpZGU=\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();

    let status = ecrm_up(scratch.path(), &["--base-port", "0"])
        .status()
        .unwrap();

    assert_eq!(status.code(), Some(1));
    let stderr = std::fs::read_to_string(scratch.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!data.join("pg").exists(), "postgresql was started anyway");
}

#[test]
fn a_master_key_reached_through_a_link_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = scratch();
    let data = scratch.path().join(".ecrm");
    std::fs::create_dir(&data).unwrap();
    let elsewhere = scratch.path().join("planted.key");
    std::fs::write(&elsewhere, "c2VjcmV0LW1hc3Rlci1rZXktdGhhdC1tdXN0LWhpZGU=\n").unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, data.join("identity-master.key")).unwrap();

    let status = ecrm_up(scratch.path(), &["--base-port", "0"])
        .status()
        .unwrap();

    assert_eq!(status.code(), Some(1));
    let stderr = std::fs::read_to_string(scratch.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("refusing the master key"), "{stderr}");
}
