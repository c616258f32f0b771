//! Requesters verified by a code emailed through a real outbound service to the address
//! profiles holds: sent once per code, confirmed once, refused when wrong, late or guessed at,
//! replaced on demand, and never shown back.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::Duration;

use chrono::{Months, NaiveDate, Utc};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use support::mailing::{Mailing, Options, body};
use support::{Harness, bad_field, call, new_subject};
use tonic::Code;

fn date(d: &pb::Date) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32).unwrap()
}

fn time(t: &prost_types::Timestamp) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(t.seconds, 0).unwrap()
}

/// A six-digit code other than `code`.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn a_submitted_request_emails_the_subject_a_code_that_verifies_them() {
    let mailing = Mailing::start().await;
    let subject = mailing.customer("ada@example.com").await;
    let received = (Utc::now() - chrono::Duration::days(3)).date_naive();
    let submitted = mailing.submit(&subject, 3).await;
    assert_eq!(submitted.status(), pb::RequestStatus::AwaitingVerification);
    assert_eq!(submitted.verification_error, "");
    assert!(submitted.verification_sent_at.is_some(), "{submitted:?}");
    assert_eq!(submitted.verification_codes_sent, 1);
    assert_eq!(submitted.verification_failed_attempts, 0);
    let expires = time(submitted.verification_code_expires_at.as_ref().unwrap());
    let lifetime = expires - Utc::now();
    assert!(
        lifetime > chrono::Duration::hours(23) && lifetime <= chrono::Duration::hours(24),
        "{lifetime}"
    );

    // One mail, to the address on file, for the verification purpose.
    let (to, code) = mailing.code(1).await;
    assert_eq!(to, ["ada@example.com"]);
    let text = body(&mailing.smtp.messages()[0]);
    assert!(text.contains("access request"), "{text}");
    assert!(
        text.contains(&expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailing.smtp.count(), 1);
    let message = mailing.message(&submitted.verification_message_id).await;
    assert_eq!(message.purpose_key, "dsr_verification");
    assert_eq!(message.template_key, "dsr_verification");
    assert!(!message.marketing);
    assert_eq!(
        message.idempotency_key,
        format!("dsr-verification-{}-0", submitted.request_id)
    );
    assert!(!format!("{message:?}").contains(&code));

    // Consent defined the purpose itself, as a legal obligation.
    let purpose = mailing
        .consent
        .client(PurposesClient::new)
        .get_purpose(call(
            &mailing.operator(),
            pb::GetPurposeRequest {
                key: "dsr_verification".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .purpose
        .unwrap();
    assert_eq!(purpose.lawful_basis(), common::LawfulBasis::LegalObligation);
    assert_eq!(purpose.channels().collect::<Vec<_>>(), [pb::Channel::Email]);
    assert_eq!(
        purpose.description,
        "verifying that a data subject request comes from the data subject (GDPR Art. 12(6))"
    );

    // The code is nowhere in what the service answers.
    let fetched = mailing.get(&submitted.request_id).await;
    assert!(!format!("{fetched:?}").contains(&code), "{fetched:?}");
    assert!(!format!("{submitted:?}").contains(&code));
    // Nor in what it stores: a MAC only.
    assert!(mailing.holds_code(&submitted.request_id));
    let stored = mailing.stored_row(&submitted.request_id);
    assert!(!stored.contains(&code), "{stored}");

    // The code verifies the requester as an operator would: three days paused move the
    // deadline by three days.
    let verified = mailing.confirm(&submitted.request_id, &code).await.unwrap();
    assert_eq!(verified.status(), pb::RequestStatus::AwaitingApproval);
    assert_eq!(verified.paused_days, 3);
    let month = received.checked_add_months(Months::new(1)).unwrap();
    assert_eq!(
        date(verified.due_on.as_ref().unwrap()),
        month + chrono::Days::new(3)
    );
    let last = verified.history.last().unwrap();
    assert_eq!(last.from_status(), pb::RequestStatus::AwaitingVerification);
    assert_eq!(last.to_status(), pb::RequestStatus::AwaitingApproval);
    assert_eq!(
        last.note,
        "requester verified (3 days paused): code sent by email to the address on file"
    );
    assert!(!format!("{verified:?}").contains(&code));
    assert!(!mailing.holds_code(&submitted.request_id));

    // It has served.
    let again = mailing
        .confirm(&submitted.request_id, &code)
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
}

#[tokio::test]
async fn a_wrong_code_counts_and_five_lock_the_code_until_a_new_one() {
    let mailing = Mailing::start().await;
    let subject = mailing.customer("ada@example.com").await;
    let submitted = mailing.submit(&subject, 0).await;
    let id = submitted.request_id;
    let (_, code) = mailing.code(1).await;

    // Not a code at all: refused, not counted.
    let malformed = mailing.confirm(&id, "12ab56").await.unwrap_err();
    assert_eq!(bad_field(&malformed), "code");
    assert_eq!(mailing.get(&id).await.verification_failed_attempts, 0);

    let wrong = other_than(&code);
    for attempt in 1..=5 {
        let refused = mailing.confirm(&id, &wrong).await.unwrap_err();
        assert_eq!(bad_field(&refused), "code", "attempt {attempt}");
        assert_eq!(mailing.get(&id).await.verification_failed_attempts, attempt);
    }
    // Even the right code now: ask for a new one.
    let locked = mailing.confirm(&id, &code).await.unwrap_err();
    assert_eq!(locked.code(), Code::FailedPrecondition, "{locked:?}");
    assert!(locked.message().contains("new code"), "{locked:?}");
    let still = mailing.get(&id).await;
    assert_eq!(still.status(), pb::RequestStatus::AwaitingVerification);
    assert_eq!(still.verification_failed_attempts, 5);

    let resent = mailing.resend(&id).await.unwrap();
    assert_eq!(resent.verification_failed_attempts, 0);
    let (_, fresh) = mailing.code(2).await;
    let verified = mailing.confirm(&id, &fresh).await.unwrap();
    assert_eq!(verified.status(), pb::RequestStatus::AwaitingApproval);
}

#[tokio::test]
async fn a_new_code_replaces_the_old_one() {
    let mailing = Mailing::start().await;
    let subject = mailing.customer("ada@example.com").await;
    let submitted = mailing.submit(&subject, 0).await;
    let id = submitted.request_id.clone();
    let (_, first) = mailing.code(1).await;

    let resent = mailing.resend(&id).await.unwrap();
    assert_eq!(resent.verification_codes_sent, 2);
    assert!(resent.verification_sent_at.is_some());
    assert_ne!(
        resent.verification_message_id,
        submitted.verification_message_id
    );
    assert_eq!(
        mailing
            .message(&resent.verification_message_id)
            .await
            .idempotency_key,
        format!("dsr-verification-{id}-1")
    );
    let (to, second) = mailing.code(2).await;
    assert_eq!(to, ["ada@example.com"]);
    // One in a million draws the same code again.
    assert_ne!(first, second);
    let note = &resent.history.last().unwrap().note;
    assert_eq!(note, "verification code 2 of 5 issued");

    let old = mailing.confirm(&id, &first).await.unwrap_err();
    assert_eq!(bad_field(&old), "code");
    let verified = mailing.confirm(&id, &second).await.unwrap();
    assert_eq!(verified.status(), pb::RequestStatus::AwaitingApproval);

    // Nothing more to send once verified.
    let late = mailing.resend(&id).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
}

#[tokio::test]
async fn a_request_is_sent_at_most_five_codes() {
    let mailing = Mailing::start().await;
    let subject = mailing.customer("ada@example.com").await;
    let id = mailing.submit(&subject, 0).await.request_id;
    for sent in 2..=5 {
        assert_eq!(
            mailing.resend(&id).await.unwrap().verification_codes_sent,
            sent
        );
    }
    let refused = mailing.resend(&id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("VerifyRequester"), "{refused:?}");
    mailing.code(5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailing.smtp.count(), 5);
    assert_eq!(mailing.get(&id).await.verification_codes_sent, 5);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let mailing = Mailing::start_with(Options {
        code_ttl: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    let subject = mailing.customer("ada@example.com").await;
    let submitted = mailing.submit(&subject, 0).await;
    let (_, code) = mailing.code(1).await;
    let expires = time(submitted.verification_code_expires_at.as_ref().unwrap());
    let wait = (expires - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
    tokio::time::sleep(wait).await;

    let expired = mailing
        .confirm(&submitted.request_id, &code)
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::FailedPrecondition, "{expired:?}");
    assert!(expired.message().contains("expired"), "{expired:?}");
    assert_eq!(
        mailing.get(&submitted.request_id).await.status(),
        pb::RequestStatus::AwaitingVerification
    );
}

#[tokio::test]
async fn with_outbound_unreachable_the_request_is_created_and_says_why() {
    let mailing = Mailing::start_with(Options {
        outbound_reachable: false,
        ..Options::default()
    })
    .await;
    let subject = mailing.customer("ada@example.com").await;
    let submitted = mailing.submit(&subject, 0).await;
    assert_eq!(submitted.status(), pb::RequestStatus::AwaitingVerification);
    assert_eq!(
        submitted.verification_error,
        "the outbound service is unavailable"
    );
    assert!(submitted.verification_sent_at.is_none());
    assert_eq!(submitted.verification_message_id, "");
    let fetched = mailing.get(&submitted.request_id).await;
    assert_eq!(fetched.verification_error, submitted.verification_error);
    assert!(mailing.holds_code(&submitted.request_id));

    // An operator verifies the requester otherwise.
    let verified = mailing
        .requests()
        .verify_requester(call(
            &mailing.operator(),
            pb::VerifyRequesterRequest {
                request_id: submitted.request_id.clone(),
                reason: "called back on the phone number on file".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(verified.status(), pb::RequestStatus::AwaitingApproval);
    // The code issued but never sent is forgotten with it.
    assert!(!mailing.holds_code(&submitted.request_id));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mailing.smtp.count(), 0);
}

#[tokio::test]
async fn a_message_outbound_refuses_is_recorded_on_the_request() {
    let mailing = Mailing::start_with(Options {
        template: false,
        ..Options::default()
    })
    .await;
    let subject = mailing.customer("ada@example.com").await;
    let submitted = mailing.submit(&subject, 0).await;
    assert_eq!(submitted.status(), pb::RequestStatus::AwaitingVerification);
    assert!(
        submitted
            .verification_error
            .starts_with("the outbound service refused the message (InvalidArgument)"),
        "{submitted:?}"
    );
    assert!(
        submitted.verification_error.contains("dsr_verification"),
        "{submitted:?}"
    );
    assert!(submitted.verification_sent_at.is_none());
}

#[tokio::test]
async fn an_operator_definition_of_the_purpose_stands() {
    // Defined on consent rather than a legal obligation: consent starts all the same, keeps
    // it, and outbound refuses to send transactional mail for it.
    let mailing = Mailing::start_with(Options {
        purpose_defined_as: Some(common::LawfulBasis::Consent),
        ..Options::default()
    })
    .await;
    let purpose = mailing
        .consent
        .client(PurposesClient::new)
        .get_purpose(call(
            &mailing.operator(),
            pb::GetPurposeRequest {
                key: "dsr_verification".to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .purpose
        .unwrap();
    assert_eq!(purpose.lawful_basis(), common::LawfulBasis::Consent);
    let subject = mailing.customer("ada@example.com").await;
    let submitted = mailing.submit(&subject, 0).await;
    assert!(
        submitted
            .verification_error
            .contains("does not rest on a contract or a legal obligation"),
        "{submitted:?}"
    );
}

#[tokio::test]
async fn without_outbound_requests_say_so_and_no_code_is_issued() {
    let harness = Harness::start().await;
    let requests = harness.server.client(
        ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient::new,
    );
    let submitted = requests
        .clone()
        .submit_request(call(
            &harness.internal(),
            pb::SubmitRequestRequest {
                subject: Some(common::SubjectRef {
                    subject: Some(common::subject_ref::Subject::SubjectId(new_subject())),
                }),
                r#type: pb::RequestType::Erasure.into(),
                channel: pb::RequestChannel::Email.into(),
                received_at: None,
                corrections: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(submitted.status(), pb::RequestStatus::AwaitingVerification);
    assert!(
        submitted.verification_error.contains("--outbound-url"),
        "{submitted:?}"
    );
    assert_eq!(submitted.verification_codes_sent, 0);
    assert!(submitted.verification_code_expires_at.is_none());

    let resend = requests
        .clone()
        .resend_verification_code(call(
            &harness.internal(),
            pb::ResendVerificationCodeRequest {
                request_id: submitted.request_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(resend.code(), Code::FailedPrecondition, "{resend:?}");
    let confirm = requests
        .clone()
        .confirm_requester(call(
            &harness.internal(),
            pb::ConfirmRequesterRequest {
                request_id: submitted.request_id.clone(),
                code: "123456".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(confirm.code(), Code::FailedPrecondition, "{confirm:?}");
}
