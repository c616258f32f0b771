//! Approved requests carried out at every service holding personal data, with profiles and
//! consent running in this process on one database.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ecrm_auth::Scope;
use ecrm_consent::{Consent, ConsentConfig, PersonalDataTarget, SERVICE};
use ecrm_crypto::MasterKey;
use ecrm_platform::ServiceContext;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::partner_sync_client::PartnerSyncClient;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{NoPersonalData, TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;

fn call<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

struct Suite {
    database: TestDatabase,
    auth: Arc<TestAuth>,
    profiles: TestServer,
    consent: TestServer,
    consent_shutdown: CancellationToken,
    master: Arc<MasterKey>,
    _profiles_shutdown: tokio_util::sync::DropGuard,
}

impl Suite {
    async fn start() -> Self {
        let database = TestDatabase::new(&[&SERVICE, &ecrm_profiles::SERVICE]).await;
        let auth = Arc::new(TestAuth::new());
        let profiles_shutdown = CancellationToken::new();
        let profiles = ecrm_profiles::Profiles::new(
            ServiceContext::new(
                database.db(&ecrm_profiles::SERVICE).await.unwrap(),
                profiles_shutdown.clone(),
            ),
            ecrm_profiles::ProfilesConfig::new(Arc::new(MasterKey::generate().unwrap().0)),
            auth.verifier("profiles").await,
        )
        .unwrap();
        let profiles = start_server(profiles.routes()).await.unwrap();
        let master = Arc::new(MasterKey::generate().unwrap().0);
        let consent_shutdown = CancellationToken::new();
        let target = PersonalDataTarget {
            name: "profiles".to_owned(),
            channel: profiles.channel(),
        };
        let consent =
            serve_consent(&database, &auth, &master, target, consent_shutdown.clone()).await;
        Self {
            database,
            auth,
            profiles,
            consent,
            consent_shutdown,
            master,
            _profiles_shutdown: profiles_shutdown.drop_guard(),
        }
    }

    fn officer(&self) -> String {
        self.auth.token(&TokenSpec::operator(
            "consent",
            [Scope::DsrSubmit, Scope::DsrManage].into_iter().collect(),
        ))
    }

    fn requests(&self) -> DataSubjectRequestsClient<Channel> {
        self.consent.client(DataSubjectRequestsClient::new)
    }

    async fn customer(&self, email: &str) -> String {
        self.profiles
            .client(ProfilesClient::new)
            .upsert_profile(call(
                &self.auth.token(&TokenSpec::internal(
                    "profiles",
                    [Scope::ProfilesWrite].into_iter().collect(),
                )),
                profiles::UpsertProfileRequest {
                    identifiers: vec![profiles::NewIdentifier {
                        identifier: Some(common::Identifier {
                            kind: common::IdentifierKind::Email.into(),
                            value: email.to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    attributes: Some(profiles::ProfileAttributes {
                        given_name: "Ada".to_owned(),
                        ..Default::default()
                    }),
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

    /// Submits, verifies and approves a request; returns its id.
    async fn approved(&self, subject: &str, kind: pb::RequestType) -> String {
        self.approved_with(subject, kind, Vec::new()).await
    }

    /// [`Suite::approved`], with the corrections of a rectification.
    async fn approved_with(
        &self,
        subject: &str,
        kind: pb::RequestType,
        corrections: Vec<privacy::Correction>,
    ) -> String {
        let token = self.officer();
        let id = self
            .requests()
            .submit_request(call(
                &token,
                pb::SubmitRequestRequest {
                    subject: Some(common::SubjectRef {
                        subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
                    }),
                    r#type: kind.into(),
                    channel: pb::RequestChannel::Web.into(),
                    received_at: None,
                    corrections,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .request
            .unwrap()
            .request_id;
        self.requests()
            .verify_requester(call(
                &token,
                pb::VerifyRequesterRequest {
                    request_id: id.clone(),
                    reason: "id checked at the desk".to_owned(),
                },
            ))
            .await
            .unwrap();
        self.requests()
            .approve_request(call(
                &token,
                pb::ApproveRequestRequest {
                    request_id: id.clone(),
                },
            ))
            .await
            .unwrap();
        id
    }

    async fn request(&self, id: &str) -> pb::DataSubjectRequest {
        self.requests()
            .get_request(call(
                &self.officer(),
                pb::GetRequestRequest {
                    request_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .request
            .unwrap()
    }

    /// Waits until the request is completed.
    async fn completed(&self, id: &str) -> pb::DataSubjectRequest {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let request = self.request(id).await;
            if request.status() == pb::RequestStatus::Completed {
                return request;
            }
            assert!(Instant::now() < deadline, "not completed: {request:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Suite {
    /// Stops this consent service and starts another on the same database, carrying
    /// requests out at `target`, as a restart would.
    async fn restart_with(&mut self, target: PersonalDataTarget) {
        self.consent_shutdown.cancel();
        self.consent_shutdown = CancellationToken::new();
        self.consent = serve_consent(
            &self.database,
            &self.auth,
            &self.master,
            target,
            self.consent_shutdown.clone(),
        )
        .await;
    }

    /// A restart where profiles' address answers nothing.
    async fn restart_unreachable(&mut self) {
        let unreachable = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        self.restart_with(PersonalDataTarget {
            name: "profiles".to_owned(),
            channel: Channel::from_shared(format!("http://{unreachable}"))
                .unwrap()
                .connect_lazy(),
        })
        .await;
    }

    /// A restart reaching profiles again.
    async fn restart_reaching_profiles(&mut self) {
        let target = PersonalDataTarget {
            name: "profiles".to_owned(),
            channel: self.profiles.channel(),
        };
        self.restart_with(target).await;
    }

    /// The subject's profile as customer service reads it.
    async fn profile(&self, subject: &str) -> profiles::Profile {
        let mut read = call(
            &self.auth.token(&TokenSpec::internal(
                "profiles",
                [Scope::ProfilesRead].into_iter().collect(),
            )),
            profiles::GetProfileRequest {
                subject: Some(common::SubjectRef {
                    subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
                }),
            },
        );
        read.metadata_mut()
            .insert("x-ecrm-purpose", "customer_service".parse().unwrap());
        self.profiles
            .client(ProfilesClient::new)
            .get_profile(read)
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
    }

    fn partner(&self, partner: &str) -> String {
        self.auth.token(&TokenSpec::partner(
            "profiles",
            partner,
            [Scope::ProfilesRead, Scope::ProfilesWrite]
                .into_iter()
                .collect(),
        ))
    }

    /// The partner syncs the customer known by `email` under its own reference.
    async fn partner_syncs(&self, partner: &str, email: &str) -> String {
        self.profiles
            .client(PartnerSyncClient::new)
            .upsert_partner_profile(call(
                &self.partner(partner),
                profiles::UpsertPartnerProfileRequest {
                    external_id: format!("{partner}-42"),
                    identifiers: vec![profiles::NewIdentifier {
                        identifier: Some(common::Identifier {
                            kind: common::IdentifierKind::Email.into(),
                            value: email.to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .subject_id
    }

    /// The partner's pending notices: (kind, subject, fields).
    async fn notices(&self, partner: &str) -> Vec<profiles::RecipientNotice> {
        self.profiles
            .client(PartnerSyncClient::new)
            .pull_notices(call(
                &self.partner(partner),
                profiles::PullNoticesRequest { max_notices: 0 },
            ))
            .await
            .unwrap()
            .into_inner()
            .notices
    }

    /// The export bundle: a zip whose manifest is signed by the service's documents key and
    /// names each part with its SHA-256.
    async fn check_bundle(&self, id: &str) {
        use futures::TryStreamExt as _;
        use std::io::Read as _;
        let chunks: Vec<pb::GetExportResponse> = self
            .requests()
            .get_export(call(
                &self.officer(),
                pb::GetExportRequest {
                    request_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .try_collect()
            .await
            .unwrap();
        let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.chunk).collect();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut read = |name: &str| {
            let mut out = Vec::new();
            archive
                .by_name(name)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            out
        };
        let manifest = read("manifest.json");
        let signature = hex::decode(read("manifest.sig")).unwrap();
        let key = self.master.signing_key("consent.documents").unwrap();
        use ring::signature::KeyPair as _;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            key.public_key().as_ref(),
        )
        .verify(&manifest, &signature)
        .expect("the manifest's signature verifies with the service's key");
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(manifest["request_id"], id);
        let part = &manifest["parts"][0];
        assert_eq!(part["file"], "profiles.json");
        let profiles_part = read("profiles.json");
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &profiles_part));
        assert_eq!(part["sha256"], digest.as_str());
        let text = String::from_utf8(profiles_part).unwrap();
        assert!(text.contains("ada@example.com"), "{text}");
    }

    /// The erasure certificate: signed, with every service's receipt and follow-up export.
    async fn check_certificate(&self, id: &str) {
        let certificate = self
            .requests()
            .get_erasure_certificate(call(
                &self.officer(),
                pb::GetErasureCertificateRequest {
                    request_id: id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        // Verified with the service's own key, not the one the response carries.
        let key = self.master.signing_key("consent.documents").unwrap();
        use ring::signature::KeyPair as _;
        assert_eq!(
            certificate.public_key,
            hex::encode(key.public_key().as_ref())
        );
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            key.public_key().as_ref(),
        )
        .verify(
            certificate.certificate_json.as_bytes(),
            &hex::decode(&certificate.signature).unwrap(),
        )
        .expect("the certificate's signature verifies");
        let document: serde_json::Value =
            serde_json::from_str(&certificate.certificate_json).unwrap();
        assert_eq!(document["receipts"][0]["service"], "profiles");
        // Profiles kept nothing of this subject: its follow-up export came back empty.
        let follow_up = &document["follow_up_exports"][0]["result"];
        assert_eq!(follow_up["records_left"], 0, "{document}");
        assert_eq!(follow_up["all_retained_by_receipt"], true);
        // An erasure has no export bundle.
        let status = self
            .requests()
            .get_export(call(
                &self.officer(),
                pb::GetExportRequest {
                    request_id: id.to_owned(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }
}

async fn serve_consent(
    database: &TestDatabase,
    auth: &Arc<TestAuth>,
    master: &Arc<MasterKey>,
    target: PersonalDataTarget,
    shutdown: CancellationToken,
) -> TestServer {
    let config = ConsentConfig {
        task_interval: Duration::from_millis(50),
        ..ConsentConfig::new(master.clone())
    };
    let consent = Consent::new(
        &ServiceContext::new(database.db(&SERVICE).await.unwrap(), shutdown),
        &config,
        auth.verifier("consent").await,
    )
    .unwrap()
    .with_personal_data(vec![target], auth.clone());
    start_server(consent.routes()).await.unwrap()
}

#[tokio::test]
async fn access_erasure_and_restriction_are_carried_out_at_profiles() {
    let suite = Suite::start().await;
    let subject = suite.customer("ada@example.com").await;

    let access = suite.approved(&subject, pb::RequestType::Access).await;
    let done = suite.completed(&access).await;
    let tasks: Vec<(&str, &str, bool)> = done
        .tasks
        .iter()
        .map(|t| (t.service.as_str(), t.action.as_str(), t.done))
        .collect();
    assert_eq!(tasks, [("profiles", "export", true)]);
    assert_eq!(done.history.last().unwrap().principal, "consent");
    suite.check_bundle(&access).await;

    let restriction = suite.approved(&subject, pb::RequestType::Restriction).await;
    suite.completed(&restriction).await;
    let mut read = call(
        &suite.auth.token(&TokenSpec::internal(
            "profiles",
            [Scope::ProfilesRead].into_iter().collect(),
        )),
        profiles::GetProfileRequest {
            subject: Some(common::SubjectRef {
                subject: Some(common::subject_ref::Subject::SubjectId(subject.clone())),
            }),
        },
    );
    read.metadata_mut()
        .insert("x-ecrm-purpose", "marketing".parse().unwrap());
    let refused = suite
        .profiles
        .client(ProfilesClient::new)
        .get_profile(read)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    let erasure = suite.approved(&subject, pb::RequestType::Erasure).await;
    let done = suite.completed(&erasure).await;
    suite.check_certificate(&erasure).await;
    let mut actions: Vec<&str> = done.tasks.iter().map(|t| t.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(actions, ["erase", "verify_erased"]);
    let mut read = call(
        &suite.auth.token(&TokenSpec::internal(
            "profiles",
            [Scope::ProfilesRead].into_iter().collect(),
        )),
        profiles::GetProfileRequest {
            subject: Some(common::SubjectRef {
                subject: Some(common::subject_ref::Subject::SubjectId(subject.clone())),
            }),
        },
    );
    read.metadata_mut()
        .insert("x-ecrm-purpose", "legal_claims".parse().unwrap());
    let gone = suite
        .profiles
        .client(ProfilesClient::new)
        .get_profile(read)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_task_that_fails_is_retried_and_a_restarted_service_finishes_it() {
    let mut suite = Suite::start().await;
    let subject = suite.customer("bo@example.com").await;
    // A consent service whose profiles address answers nothing.
    suite.restart_unreachable().await;
    let id = suite.approved(&subject, pb::RequestType::Erasure).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let failing = loop {
        let request = suite.request(&id).await;
        if request.tasks.iter().any(|t| !t.last_error.is_empty()) {
            break request;
        }
        assert!(Instant::now() < deadline, "no attempt failed: {request:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failing.status(), pb::RequestStatus::InProgress);

    // The service restarts, reaching profiles this time: the pending tasks complete.
    suite.restart_reaching_profiles().await;
    let done = suite.completed(&id).await;
    assert!(done.tasks.iter().all(|t| t.done && t.last_error.is_empty()));
    assert!(
        done.tasks.iter().any(|t| t.attempts >= 2),
        "{:?}",
        done.tasks
    );
}

fn correction(field: &str, value_json: &str) -> privacy::Correction {
    privacy::Correction {
        field: field.to_owned(),
        value_json: value_json.to_owned(),
    }
}

#[tokio::test]
async fn a_rectification_reaches_profiles_and_every_recipient_is_told() {
    let suite = Suite::start().await;
    let subject = suite.customer("ada@example.com").await;
    // An airline synced the customer; a hotel synced someone else.
    assert_eq!(
        suite.partner_syncs("airline", "ada@example.com").await,
        subject
    );
    suite.partner_syncs("hotel", "bo@example.com").await;

    let id = suite
        .approved_with(
            &subject,
            pb::RequestType::Rectification,
            vec![
                correction("given_name", r#""Augusta""#),
                correction("postal_address", r#"{"lines": ["12 St James's Square"], "locality": "London", "postal_code": "SW1Y 4LE", "country": "GB"}"#),
                correction("nickname", r#""Countess""#),
            ],
        )
        .await;
    let done = suite.completed(&id).await;
    assert_eq!(
        done.corrected_fields,
        ["given_name", "postal_address", "nickname"]
    );
    let task = &done.tasks[0];
    assert_eq!(
        (task.service.as_str(), task.action.as_str()),
        ("profiles", "rectify")
    );
    assert_eq!(task.corrected_fields, ["given_name", "postal_address"]);
    assert_eq!(task.notified_recipients, ["airline"]);
    // What no service holds is said, not dropped.
    let note = &done.history.last().unwrap().note;
    assert!(note.contains("no service holds nickname"), "{note}");

    let profile = suite.profile(&subject).await;
    let attributes = profile.attributes.unwrap();
    assert_eq!(attributes.given_name, "Augusta");
    assert_eq!(attributes.postal_address.unwrap().locality, "London");

    // The corrections were personal data: once carried out, only the field names stay.
    let db = suite.database.db(&SERVICE).await.unwrap();
    let request = uuid::Uuid::parse_str(&id).unwrap();
    let kept: i64 = db
        .run(move |conn| {
            use diesel::prelude::*;
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            diesel::sql_query(
                "SELECT count(*) AS n FROM requests WHERE id = $1 AND sealed_corrections IS NOT NULL",
            )
            .bind::<diesel::sql_types::Uuid, _>(request)
            .get_result::<Count>(conn)
            .map(|c| c.n)
            .map_err(ecrm_platform::DbError::from)
        })
        .await
        .unwrap();
    assert_eq!(kept, 0);

    // The airline is told which fields were corrected; the hotel hears nothing.
    let notices = suite.notices("airline").await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].kind(), profiles::NoticeKind::Rectified);
    assert_eq!(notices[0].subject_id, subject);
    assert_eq!(notices[0].fields, ["given_name", "postal_address"]);
    assert!(suite.notices("hotel").await.is_empty());

    // A partner acknowledges only its own notices; acknowledged ones are not pulled again.
    let sync = || suite.profiles.client(PartnerSyncClient::new);
    let foreign = sync()
        .acknowledge_notices(call(
            &suite.partner("hotel"),
            profiles::AcknowledgeNoticesRequest {
                notice_ids: vec![notices[0].notice_id.clone()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), tonic::Code::NotFound);
    let acknowledged = sync()
        .acknowledge_notices(call(
            &suite.partner("airline"),
            profiles::AcknowledgeNoticesRequest {
                notice_ids: vec![notices[0].notice_id.clone()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acknowledged.acknowledged, 1);
    assert!(suite.notices("airline").await.is_empty());
}

#[tokio::test]
async fn restriction_and_erasure_are_notified_to_recipients_and_recorded() {
    let suite = Suite::start().await;
    let subject = suite.customer("ada@example.com").await;
    suite.partner_syncs("airline", "ada@example.com").await;

    let restriction = suite.approved(&subject, pb::RequestType::Restriction).await;
    let done = suite.completed(&restriction).await;
    assert_eq!(done.tasks[0].notified_recipients, ["airline"]);
    let lift = suite
        .approved(&subject, pb::RequestType::LiftRestriction)
        .await;
    suite.completed(&lift).await;
    let erasure = suite.approved(&subject, pb::RequestType::Erasure).await;
    let done = suite.completed(&erasure).await;
    let erase = done.tasks.iter().find(|t| t.action == "erase").unwrap();
    assert_eq!(erase.notified_recipients, ["airline"]);

    let kinds: Vec<profiles::NoticeKind> = suite
        .notices("airline")
        .await
        .iter()
        .map(|n| {
            assert_eq!(n.subject_id, subject);
            n.kind()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            profiles::NoticeKind::Restricted,
            profiles::NoticeKind::RestrictionLifted,
            profiles::NoticeKind::Erased,
        ]
    );
    // The certificate records who was told, and the notices are kept as that record.
    let certificate = suite
        .requests()
        .get_erasure_certificate(call(
            &suite.officer(),
            pb::GetErasureCertificateRequest {
                request_id: erasure.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let document: serde_json::Value = serde_json::from_str(&certificate.certificate_json).unwrap();
    let receipt = &document["receipts"][0]["receipt"];
    assert_eq!(receipt["notified_recipients"][0], "airline", "{document}");
    assert!(
        receipt["retained"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["category"] == "recipient_notices" && r["count"] == 3),
        "{document}"
    );
}

#[tokio::test]
async fn a_correction_the_service_refuses_is_not_retried_and_an_operator_completes_it() {
    let suite = Suite::start().await;
    let subject = suite.customer("ada@example.com").await;
    let id = suite
        .approved_with(
            &subject,
            pb::RequestType::Rectification,
            vec![correction("birth_date", r#""the fifth of May""#)],
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let request = suite.request(&id).await;
        if request.tasks.iter().any(|t| t.failed) {
            break request;
        }
        assert!(Instant::now() < deadline, "not refused: {request:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let task = &refused.tasks[0];
    assert!(!task.done);
    assert!(
        task.last_error.contains("corrections[0].value_json"),
        "{task:?}"
    );
    assert_eq!(task.attempts, 1);
    assert_eq!(refused.status(), pb::RequestStatus::InProgress);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(suite.request(&id).await.tasks[0].attempts, 1);

    let completed = suite
        .requests()
        .complete_request(call(
            &suite.officer(),
            pb::CompleteRequestRequest {
                request_id: id.clone(),
                note: "birth date confirmed by phone as 1815-12-10 and corrected by hand"
                    .to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(completed.status(), pb::RequestStatus::Completed);
}

#[tokio::test]
async fn corrections_are_checked_on_submission() {
    let suite = Suite::start().await;
    let subject = suite.customer("ada@example.com").await;
    let submit = |kind: pb::RequestType, corrections: Vec<privacy::Correction>| {
        let mut requests = suite.requests();
        let token = suite.officer();
        let subject = subject.clone();
        async move {
            requests
                .submit_request(call(
                    &token,
                    pb::SubmitRequestRequest {
                        subject: Some(common::SubjectRef {
                            subject: Some(common::subject_ref::Subject::SubjectId(subject)),
                        }),
                        r#type: kind.into(),
                        channel: pb::RequestChannel::Email.into(),
                        received_at: None,
                        corrections,
                    },
                ))
                .await
                .unwrap_err()
        }
    };
    let cases = [
        (pb::RequestType::Rectification, vec![], "corrections"),
        (
            pb::RequestType::Access,
            vec![correction("given_name", r#""Ada""#)],
            "corrections",
        ),
        (
            pb::RequestType::Rectification,
            vec![correction("given_name", "Ada")],
            "corrections[0].value_json",
        ),
        (
            pb::RequestType::Rectification,
            vec![
                correction("given_name", r#""Ada""#),
                correction("given_name", r#""Augusta""#),
            ],
            "corrections[1].field",
        ),
        (
            pb::RequestType::Rectification,
            vec![correction("Given Name", r#""Ada""#)],
            "corrections[0].field",
        ),
        (
            pb::RequestType::Rectification,
            (0..51)
                .map(|i| correction(&format!("custom.f{i}"), "1"))
                .collect(),
            "corrections",
        ),
    ];
    for (kind, corrections, field) in cases {
        let status = submit(kind, corrections).await;
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("invalid {field}:")),
            "{field}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn a_lifting_waits_for_the_restriction_submitted_before_it() {
    let mut suite = Suite::start().await;
    let subject = suite.customer("ada@example.com").await;
    // Profiles cannot be reached: the restriction fails and waits to be retried.
    suite.restart_unreachable().await;
    let restriction = suite.approved(&subject, pb::RequestType::Restriction).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while suite.request(&restriction).await.tasks[0].attempts == 0 {
        assert!(Instant::now() < deadline, "the restriction was never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lift = suite
        .approved(&subject, pb::RequestType::LiftRestriction)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        suite.request(&lift).await.tasks[0].attempts,
        0,
        "the lifting ran before the restriction"
    );

    // Profiles is back: the restriction, then the lifting; the subject's last wish stands.
    suite.restart_reaching_profiles().await;
    suite.completed(&restriction).await;
    suite.completed(&lift).await;
    assert!(!suite.profile(&subject).await.restricted);
}

#[tokio::test]
async fn a_call_outlasting_the_lease_keeps_its_task_while_its_worker_lives() {
    let mut suite = Suite::start().await;
    let subject = suite.customer("slow@example.com").await;
    // Profiles takes 40 s to erase, beyond the 30 s lease, and two consent workers share the
    // queue: the one running the call renews its lease, so the other never takes the task.
    let slow = NoPersonalData::new("profiles").erasing_after(Duration::from_secs(40));
    let slow_server = start_server(
        ecrm_platform::ServiceRoutes::unauthenticated().with(PersonalDataServer::new(slow.clone())),
    )
    .await
    .unwrap();
    let target = || PersonalDataTarget {
        name: "profiles".to_owned(),
        channel: slow_server.channel(),
    };
    suite.restart_with(target()).await;
    let second_shutdown = CancellationToken::new();
    let _second = serve_consent(
        &suite.database,
        &suite.auth,
        &suite.master,
        target(),
        second_shutdown.clone(),
    )
    .await;
    let _stop_second = second_shutdown.drop_guard();

    let id = suite.approved(&subject, pb::RequestType::Erasure).await;
    let deadline = Instant::now() + Duration::from_secs(70);
    let done = loop {
        let request = suite.request(&id).await;
        if request.status() == pb::RequestStatus::Completed {
            break request;
        }
        assert!(Instant::now() < deadline, "not completed: {request:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(slow.erase_calls(), 1, "the erasure was asked for twice");
    let erase = done
        .tasks
        .iter()
        .find(|task| task.action == "erase")
        .unwrap();
    assert_eq!(erase.attempts, 1, "{:?}", done.tasks);
}
