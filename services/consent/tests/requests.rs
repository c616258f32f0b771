//! Data subject requests through the running service: their deadline, their life, and who did
//! what to them.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::sync::Arc;

use chrono::{Datelike, Months, NaiveDate, Utc};
use ecrm_auth::Scope;
use ecrm_consent::SERVICE as SERVICE_DEF;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_testkit::TokenSpec;
use support::*;
use tonic::Code;

fn date(d: &pb::Date) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32).unwrap()
}

fn submit(subject: &str, days_ago: i64, kind: pb::RequestType) -> pb::SubmitRequestRequest {
    let received = Utc::now() - chrono::Duration::days(days_ago);
    pb::SubmitRequestRequest {
        subject: Some(common::SubjectRef {
            subject: Some(common::subject_ref::Subject::SubjectId(subject.to_owned())),
        }),
        r#type: kind.into(),
        channel: pb::RequestChannel::Email.into(),
        received_at: Some(prost_types::Timestamp {
            seconds: received.timestamp(),
            nanos: 0,
        }),
        corrections: vec![],
    }
}

impl Harness {
    fn requests(&self) -> DataSubjectRequestsClient<tonic::transport::Channel> {
        self.server.client(DataSubjectRequestsClient::new)
    }

    async fn submit(
        &self,
        request: pb::SubmitRequestRequest,
    ) -> Result<pb::DataSubjectRequest, tonic::Status> {
        self.requests()
            .submit_request(call(&self.internal(), request))
            .await
            .map(|r| r.into_inner().request.unwrap())
    }
}

#[tokio::test]
async fn a_request_runs_a_month_paused_while_verifying_and_extends_once() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let received = (Utc::now() - chrono::Duration::days(3)).date_naive();
    let submitted = harness
        .submit(submit(&new_subject(), 3, pb::RequestType::Access))
        .await
        .unwrap();
    assert_eq!(submitted.status(), pb::RequestStatus::AwaitingVerification);
    // Three days waiting for verification so far: the month runs from receipt, plus those.
    let month = received.checked_add_months(Months::new(1)).unwrap();
    assert_eq!(
        date(submitted.due_on.as_ref().unwrap()),
        month + chrono::Days::new(3)
    );

    let id = submitted.request_id.clone();
    let missing_reason = harness
        .requests()
        .verify_requester(call(
            &token,
            pb::VerifyRequesterRequest {
                request_id: id.clone(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&missing_reason), "reason");
    let verified = harness
        .requests()
        .verify_requester(call(
            &token,
            pb::VerifyRequesterRequest {
                request_id: id.clone(),
                reason: "called back on the phone number on file".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(verified.status(), pb::RequestStatus::AwaitingApproval);
    assert_eq!(verified.paused_days, 3);
    assert_eq!(
        date(verified.due_on.as_ref().unwrap()),
        month + chrono::Days::new(3)
    );

    let approved = harness
        .requests()
        .approve_request(call(
            &token,
            pb::ApproveRequestRequest {
                request_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(approved.status(), pb::RequestStatus::InProgress);

    let too_long = harness
        .requests()
        .extend_deadline(call(
            &token,
            pb::ExtendDeadlineRequest {
                request_id: id.clone(),
                months: 3,
                reason: "complex".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&too_long), "months");
    let extended = harness
        .requests()
        .extend_deadline(call(
            &token,
            pb::ExtendDeadlineRequest {
                request_id: id.clone(),
                months: 2,
                reason: "eleven years of orders across three brands".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(extended.extension_months, 2);
    assert_eq!(
        date(extended.due_on.as_ref().unwrap()),
        month.checked_add_months(Months::new(2)).unwrap() + chrono::Days::new(3)
    );
    let again = harness
        .requests()
        .extend_deadline(call(
            &token,
            pb::ExtendDeadlineRequest {
                request_id: id.clone(),
                months: 1,
                reason: "more".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    // Every change is on record, with who made it.
    let notes: Vec<(pb::RequestStatus, String)> = extended
        .history
        .iter()
        .map(|e| (e.to_status(), e.note.clone()))
        .collect();
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert_eq!(notes[0].0, pb::RequestStatus::AwaitingVerification);
    assert!(notes[1].1.contains("called back"));
    assert_eq!(notes[2].0, pb::RequestStatus::InProgress);
    assert!(notes[3].1.contains("extended by 2 months"));
    assert!(
        extended
            .history
            .iter()
            .all(|e| e.principal_kind == "internal" && !e.principal.is_empty())
    );
}

#[tokio::test]
async fn a_rejected_request_is_closed() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let id = harness
        .submit(submit(&new_subject(), 0, pb::RequestType::Erasure))
        .await
        .unwrap()
        .request_id;
    let rejected = harness
        .requests()
        .reject_request(call(
            &token,
            pb::RejectRequestRequest {
                request_id: id.clone(),
                reason: "the requester could not be verified".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(rejected.status(), pb::RequestStatus::Rejected);
    assert_eq!(
        rejected.rejection_reason,
        "the requester could not be verified"
    );
    for status in [
        harness
            .requests()
            .approve_request(call(
                &token,
                pb::ApproveRequestRequest {
                    request_id: id.clone(),
                },
            ))
            .await
            .unwrap_err(),
        harness
            .requests()
            .extend_deadline(call(
                &token,
                pb::ExtendDeadlineRequest {
                    request_id: id.clone(),
                    months: 1,
                    reason: "late".to_owned(),
                },
            ))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition);
    }
    let unknown = harness
        .requests()
        .get_request(call(
            &token,
            pb::GetRequestRequest {
                request_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn requests_are_listed_most_urgent_first_and_filtered() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let mut ids = Vec::new();
    for (days_ago, kind) in [
        (1, pb::RequestType::Access),
        (20, pb::RequestType::Erasure),
        (10, pb::RequestType::Access),
    ] {
        let submitted = harness
            .submit(submit(&new_subject(), days_ago, kind))
            .await
            .unwrap();
        // Verified at once, so the deadlines are a month from receipt plus the days waited.
        harness
            .requests()
            .verify_requester(call(
                &token,
                pb::VerifyRequesterRequest {
                    request_id: submitted.request_id.clone(),
                    reason: "id checked".to_owned(),
                },
            ))
            .await
            .unwrap();
        ids.push(submitted.request_id);
    }
    let list = |request: pb::ListRequestsRequest| {
        let mut client = harness.requests();
        let token = token.clone();
        async move {
            client
                .list_requests(call(&token, request))
                .await
                .map(|r| r.into_inner())
        }
    };
    let all = list(pb::ListRequestsRequest::default()).await.unwrap();
    assert_eq!(all.requests.len(), 3);
    // Most urgent first: by due date, then by receipt.
    let key = |r: &pb::DataSubjectRequest| {
        let received = r.received_at.unwrap();
        (
            date(r.due_on.as_ref().unwrap()),
            received.seconds,
            received.nanos,
        )
    };
    assert!(all.requests.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
    let order: Vec<String> = all.requests.iter().map(|r| r.request_id.clone()).collect();
    let mut submitted = ids.clone();
    submitted.sort();
    let mut listed = order.clone();
    listed.sort();
    assert_eq!(listed, submitted);

    let erasures = list(pb::ListRequestsRequest {
        types: vec![pb::RequestType::Erasure.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(erasures.requests.len(), 1);
    // Only those due on or before the first one's day, as computed from the full list.
    let cutoff = date(all.requests[0].due_on.as_ref().unwrap());
    let expected = all
        .requests
        .iter()
        .filter(|r| date(r.due_on.as_ref().unwrap()) <= cutoff)
        .count();
    let due_soon = list(pb::ListRequestsRequest {
        due_on_or_before: Some(pb::Date {
            year: cutoff.year(),
            month: cutoff.month() as i32,
            day: cutoff.day() as i32,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(due_soon.requests.len(), expected);
    let before = cutoff.pred_opt().unwrap();
    let none = list(pb::ListRequestsRequest {
        due_on_or_before: Some(pb::Date {
            year: before.year(),
            month: before.month() as i32,
            day: before.day() as i32,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(none.requests.is_empty());
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list(pb::ListRequestsRequest {
            page: Some(common::PageRequest {
                page_size: 1,
                page_token,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        paged.extend(page.requests.into_iter().map(|r| r.request_id));
        page_token = page.page.unwrap().next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, order);
    let bad = list(pb::ListRequestsRequest {
        statuses: vec![0],
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(bad_field(&bad), "statuses[0]");
}

#[tokio::test]
async fn bad_requests_name_the_field_and_only_managers_manage() {
    let harness = Harness::start().await;
    let mut no_type = submit(&new_subject(), 0, pb::RequestType::Access);
    no_type.r#type = 0;
    assert_eq!(
        bad_field(&harness.submit(no_type).await.unwrap_err()),
        "type"
    );
    let mut no_channel = submit(&new_subject(), 0, pb::RequestType::Access);
    no_channel.channel = 0;
    assert_eq!(
        bad_field(&harness.submit(no_channel).await.unwrap_err()),
        "channel"
    );
    let future = submit(&new_subject(), -2, pb::RequestType::Access);
    assert_eq!(
        bad_field(&harness.submit(future).await.unwrap_err()),
        "received_at"
    );
    let bad_subject = submit("not-a-uuid", 0, pb::RequestType::Access);
    assert_eq!(
        bad_field(&harness.submit(bad_subject).await.unwrap_err()),
        "subject.subject_id"
    );
    // Without a profiles service, only subject ids name subjects.
    let by_email = pb::SubmitRequestRequest {
        subject: Some(common::SubjectRef {
            subject: Some(common::subject_ref::Subject::Identifier(
                common::Identifier {
                    kind: common::IdentifierKind::Email.into(),
                    value: "ada@example.com".to_owned(),
                    ..Default::default()
                },
            )),
        }),
        ..submit(&new_subject(), 0, pb::RequestType::Access)
    };
    assert_eq!(
        harness.submit(by_email).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    let submitter = harness.token(TokenSpec::operator(
        "consent",
        [Scope::DsrSubmit].into_iter().collect(),
    ));
    let submitted = harness
        .requests()
        .submit_request(call(
            &submitter,
            submit(&new_subject(), 0, pb::RequestType::Access),
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    let denied = harness
        .requests()
        .approve_request(call(
            &submitter,
            pb::ApproveRequestRequest {
                request_id: submitted.request_id,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_subject_named_by_identifier_is_found_at_profiles() {
    let database = ecrm_testkit::TestDatabase::new(&[&SERVICE_DEF, &ecrm_profiles::SERVICE]).await;
    let auth = Arc::new(ecrm_testkit::TestAuth::new());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let profiles = ecrm_profiles::Profiles::new(
        ecrm_platform::ServiceContext::new(
            database.db(&ecrm_profiles::SERVICE).await.unwrap(),
            shutdown.clone(),
        ),
        ecrm_profiles::ProfilesConfig::new(Arc::new(ecrm_crypto::MasterKey::generate().unwrap().0)),
        auth.verifier("profiles").await,
    )
    .unwrap();
    let profiles = ecrm_testkit::start_server(profiles.routes()).await.unwrap();
    let subject = profiles
        .client(ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient::new)
        .upsert_profile(call(
            &auth.token(&TokenSpec::internal(
                "profiles",
                [Scope::ProfilesWrite].into_iter().collect(),
            )),
            ecrm_proto::ecrm::profiles::v1::UpsertProfileRequest {
                identifiers: vec![ecrm_proto::ecrm::profiles::v1::NewIdentifier {
                    identifier: Some(common::Identifier {
                        kind: common::IdentifierKind::Email.into(),
                        value: "ada@example.com".to_owned(),
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
        .subject_id;
    let consent = ecrm_consent::Consent::new(
        &ecrm_platform::ServiceContext::new(
            database.db(&SERVICE_DEF).await.unwrap(),
            shutdown.clone(),
        ),
        &ecrm_consent::ConsentConfig::new(Arc::new(ecrm_crypto::MasterKey::generate().unwrap().0)),
        auth.verifier("consent").await,
    )
    .unwrap()
    .with_directory(Arc::new(ecrm_consent::ProfilesDirectory::new(
        profiles.channel(),
        auth.clone(),
    )));
    let consent = ecrm_testkit::start_server(consent.routes()).await.unwrap();
    let token = auth.token(&TokenSpec::operator(
        "consent",
        [Scope::DsrSubmit].into_iter().collect(),
    ));
    let by = |email: &str| pb::SubmitRequestRequest {
        subject: Some(common::SubjectRef {
            subject: Some(common::subject_ref::Subject::Identifier(
                common::Identifier {
                    kind: common::IdentifierKind::Email.into(),
                    value: email.to_owned(),
                    ..Default::default()
                },
            )),
        }),
        r#type: pb::RequestType::Access.into(),
        channel: pb::RequestChannel::Web.into(),
        received_at: None,
        corrections: vec![],
    };
    let mut client = consent.client(DataSubjectRequestsClient::new);
    let found = client
        .submit_request(call(&token, by("ADA@example.com")))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(found.subject_id, subject);
    let unknown = client
        .submit_request(call(&token, by("nobody@example.com")))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&unknown), "subject.identifier");
    let malformed = client
        .submit_request(call(&token, by("not an email")))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&malformed), "subject.identifier");
    shutdown.cancel();
}

#[tokio::test]
async fn an_operator_completes_what_no_service_carries_out() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let id = harness
        .submit(submit(&new_subject(), 0, pb::RequestType::Restriction))
        .await
        .unwrap()
        .request_id;
    harness
        .requests()
        .verify_requester(call(
            &token,
            pb::VerifyRequesterRequest {
                request_id: id.clone(),
                reason: "id checked".to_owned(),
            },
        ))
        .await
        .unwrap();
    let approved = harness
        .requests()
        .approve_request(call(
            &token,
            pb::ApproveRequestRequest {
                request_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert!(approved.tasks.is_empty());
    let no_note = harness
        .requests()
        .complete_request(call(
            &token,
            pb::CompleteRequestRequest {
                request_id: id.clone(),
                note: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&no_note), "note");
    let completed = harness
        .requests()
        .complete_request(call(
            &token,
            pb::CompleteRequestRequest {
                request_id: id.clone(),
                note: "processing restricted in the shop back office".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(completed.status(), pb::RequestStatus::Completed);
    assert!(
        completed
            .history
            .last()
            .unwrap()
            .note
            .contains("processing restricted in the shop")
    );
    let again = harness
        .requests()
        .complete_request(call(
            &token,
            pb::CompleteRequestRequest {
                request_id: id,
                note: "again".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn an_objection_ends_direct_marketing_until_the_subject_grants_again() {
    let harness = Harness::start().await;
    let token = harness.internal();
    let define =
        |key: &str, basis: common::LawfulBasis, channels: &[pb::Channel], marketing: bool| {
            let mut client = harness.purposes();
            let token = token.clone();
            let purpose = pb::Purpose {
                direct_marketing: marketing,
                ..purpose(key, basis, channels)
            };
            async move {
                client
                    .define_purpose(call(
                        &token,
                        pb::DefinePurposeRequest {
                            purpose: Some(purpose),
                        },
                    ))
                    .await
                    .unwrap()
            }
        };
    define(
        "newsletter",
        common::LawfulBasis::Consent,
        &[pb::Channel::Email, pb::Channel::Sms],
        true,
    )
    .await;
    define(
        "offers",
        common::LawfulBasis::LegitimateInterest,
        &[pb::Channel::Email],
        true,
    )
    .await;
    define(
        "orders",
        common::LawfulBasis::Contract,
        &[pb::Channel::Email],
        false,
    )
    .await;
    let notice = harness.notice("newsletter", "Weekly news.").await;
    let (subject, other) = (new_subject(), new_subject());
    for channel in [pb::Channel::Email, pb::Channel::Sms] {
        let mut request = grant(&subject, "newsletter", &notice);
        request.channel = channel.into();
        harness.record(request).await.unwrap();
    }

    let id = harness
        .submit(submit(&subject, 0, pb::RequestType::Objection))
        .await
        .unwrap()
        .request_id;
    harness
        .requests()
        .verify_requester(call(
            &token,
            pb::VerifyRequesterRequest {
                request_id: id.clone(),
                reason: "signed letter".to_owned(),
            },
        ))
        .await
        .unwrap();
    let done = harness
        .requests()
        .approve_request(call(&token, pb::ApproveRequestRequest { request_id: id }))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(done.status(), pb::RequestStatus::Completed);
    assert!(
        done.history
            .last()
            .unwrap()
            .note
            .contains("2 grants withdrawn"),
        "{:?}",
        done.history
    );

    let both = [subject.clone(), other.clone()];
    let reasons = |key: &'static str, channel: pb::Channel| {
        let both = both.clone();
        let harness = &harness;
        async move {
            harness
                .check(key, channel, &both)
                .await
                .unwrap()
                .iter()
                .map(|d| d.reason())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        reasons("newsletter", pb::Channel::Email).await,
        [pb::Reason::Objected, pb::Reason::NeverAsked]
    );
    assert_eq!(
        reasons("offers", pb::Channel::Email).await,
        [pb::Reason::Objected, pb::Reason::OtherLawfulBasis]
    );
    assert_eq!(
        reasons("orders", pb::Channel::Email).await,
        [pb::Reason::Contract, pb::Reason::Contract]
    );

    // The withdrawals are in the ledger, as the objection wrote them.
    let entries = harness
        .consents()
        .list_consent_history(call(
            &token,
            pb::ListConsentHistoryRequest {
                subject_id: subject.clone(),
                page: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let withdrawals: Vec<&str> = entries
        .iter()
        .filter(|e| e.decision() == pb::Decision::Withdrawn)
        .map(|e| e.collection_point.as_str())
        .collect();
    assert_eq!(withdrawals, ["objection", "objection"]);

    // The subject grants the newsletter by email again: that channel only is allowed again.
    harness
        .record(grant(&subject, "newsletter", &notice))
        .await
        .unwrap();
    assert_eq!(
        reasons("newsletter", pb::Channel::Email).await[0],
        pb::Reason::Granted
    );
    assert_eq!(
        reasons("newsletter", pb::Channel::Sms).await[0],
        pb::Reason::Objected
    );
}
