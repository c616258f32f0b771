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
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use ecrm_testkit::{TestAuth, TestDatabase, TestServer, TokenSpec, start_server};
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
    suite.consent_shutdown.cancel();
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let shutdown = CancellationToken::new();
    let nowhere = PersonalDataTarget {
        name: "profiles".to_owned(),
        channel: Channel::from_shared(format!("http://{unreachable}"))
            .unwrap()
            .connect_lazy(),
    };
    suite.consent = serve_consent(
        &suite.database,
        &suite.auth,
        &suite.master,
        nowhere,
        shutdown.clone(),
    )
    .await;
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
    shutdown.cancel();
    let target = PersonalDataTarget {
        name: "profiles".to_owned(),
        channel: suite.profiles.channel(),
    };
    let restarted = CancellationToken::new();
    suite.consent = serve_consent(
        &suite.database,
        &suite.auth,
        &suite.master,
        target,
        restarted.clone(),
    )
    .await;
    let done = suite.completed(&id).await;
    assert!(done.tasks.iter().all(|t| t.done && t.last_error.is_empty()));
    assert!(
        done.tasks.iter().any(|t| t.attempts >= 2),
        "{:?}",
        done.tasks
    );
    restarted.cancel();
}
