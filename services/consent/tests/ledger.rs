//! The consent ledger through the running service: decisions, their effect, the checks, and
//! the proof that nothing was changed.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::collections::HashMap;

use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as pb;
use support::*;

async fn newsletter(harness: &Harness) -> String {
    harness
        .define(
            "newsletter",
            common::LawfulBasis::Consent,
            &[pb::Channel::Email, pb::Channel::Sms],
        )
        .await;
    harness.notice("newsletter", "Our weekly newsletter.").await
}

async fn history(harness: &Harness, subject: &str) -> Vec<pb::LedgerEntry> {
    harness
        .consents()
        .list_consent_history(call(
            &harness.internal(),
            pb::ListConsentHistoryRequest {
                subject_id: subject.to_owned(),
                page: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries
}

async fn verify(harness: &Harness) -> pb::VerifyLedgerResponse {
    harness
        .consents()
        .verify_ledger(call(
            &harness.internal(),
            pb::VerifyLedgerRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_grant_then_a_withdrawal_take_effect_at_once_and_chain() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    let subject = new_subject();
    let subjects = [subject.clone()];

    let check = harness
        .check("newsletter", pb::Channel::Email, &subjects)
        .await
        .unwrap();
    assert_eq!(check[0].reason(), pb::Reason::NeverAsked);
    assert!(!check[0].allowed);

    let granted = harness
        .record(grant(&subject, "newsletter", &notice))
        .await
        .unwrap();
    assert_eq!(granted.sequence, 1);
    assert_eq!(granted.previous_hash, "0".repeat(64));
    let check = harness
        .check("newsletter", pb::Channel::Email, &subjects)
        .await
        .unwrap();
    assert!(check[0].allowed);
    assert_eq!(check[0].reason(), pb::Reason::Granted);
    // Another channel of the same purpose was never asked.
    let sms = harness
        .check("newsletter", pb::Channel::Sms, &subjects)
        .await
        .unwrap();
    assert_eq!(sms[0].reason(), pb::Reason::NeverAsked);

    let withdrawn = harness
        .record(withdraw(&subject, "newsletter"))
        .await
        .unwrap();
    assert_eq!(withdrawn.sequence, 2);
    assert_eq!(withdrawn.previous_hash, granted.hash);
    let check = harness
        .check("newsletter", pb::Channel::Email, &subjects)
        .await
        .unwrap();
    assert!(!check[0].allowed);
    assert_eq!(check[0].reason(), pb::Reason::Withdrawn);

    let state = harness
        .consents()
        .get_consent_state(call(
            &harness.internal(),
            pb::GetConsentStateRequest {
                subject_id: subject.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .states;
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].decision(), pb::Decision::Withdrawn);
    assert_eq!(state[0].entry_id, withdrawn.entry_id);

    let entries = history(&harness, &subject).await;
    assert_eq!(entries, [granted.clone(), withdrawn]);
    assert_eq!(entries[0].evidence.as_ref().unwrap().form_id, "checkout-v2");
    assert_eq!(entries[0].recorded_by_kind, "internal");
    assert!(verify(&harness).await.intact);
}

#[tokio::test]
async fn a_grant_lapses_at_its_expiry() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    let subject = new_subject();
    let mut request = grant(&subject, "newsletter", &notice);
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    request.expires_at = Some(prost_types::Timestamp {
        seconds: soon.timestamp(),
        nanos: i32::try_from(soon.timestamp_subsec_nanos()).unwrap_or_default(),
    });
    harness.record(request).await.unwrap();
    let subjects = [subject.clone()];
    assert_eq!(
        harness
            .check("newsletter", pb::Channel::Email, &subjects)
            .await
            .unwrap()[0]
            .reason(),
        pb::Reason::Granted
    );
    if let Ok(wait) = (soon - chrono::Utc::now()).to_std() {
        tokio::time::sleep(wait + std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        harness
            .check("newsletter", pb::Channel::Email, &subjects)
            .await
            .unwrap()[0]
            .reason(),
        pb::Reason::Expired
    );
    let state = harness
        .consents()
        .get_consent_state(call(
            &harness.internal(),
            pb::GetConsentStateRequest {
                subject_id: subject,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .states;
    assert!(state[0].expired);
    assert_eq!(state[0].decision(), pb::Decision::Withdrawn);
}

#[tokio::test]
async fn bad_decisions_are_refused_naming_the_field_and_nothing_is_stored() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    harness
        .define(
            "orders",
            common::LawfulBasis::Contract,
            &[pb::Channel::Email],
        )
        .await;
    let subject = new_subject();
    let base = grant(&subject, "newsletter", &notice);
    let cases = [
        (
            pb::RecordConsentRequest {
                subject_id: "x".to_owned(),
                ..base.clone()
            },
            "subject_id",
        ),
        (
            pb::RecordConsentRequest {
                purpose_key: "unknown".to_owned(),
                ..base.clone()
            },
            "purpose_key",
        ),
        (
            pb::RecordConsentRequest {
                purpose_key: "orders".to_owned(),
                ..base.clone()
            },
            "purpose_key",
        ),
        (
            pb::RecordConsentRequest {
                decision: 0,
                ..base.clone()
            },
            "decision",
        ),
        (
            pb::RecordConsentRequest {
                channel: pb::Channel::Post.into(),
                ..base.clone()
            },
            "channel",
        ),
        (
            pb::RecordConsentRequest {
                notice_version: String::new(),
                ..base.clone()
            },
            "notice_version",
        ),
        (
            pb::RecordConsentRequest {
                notice_version: "0".repeat(64),
                ..base.clone()
            },
            "notice_version",
        ),
        (
            pb::RecordConsentRequest {
                collection_point: String::new(),
                ..base.clone()
            },
            "collection_point",
        ),
        (
            pb::RecordConsentRequest {
                evidence: Some(pb::Evidence {
                    ip_hash: "192.0.2.1".to_owned(),
                    ..Default::default()
                }),
                ..base.clone()
            },
            "evidence.ip_hash",
        ),
        (
            pb::RecordConsentRequest {
                expires_at: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
                ..base.clone()
            },
            "expires_at",
        ),
    ];
    for (bad, field) in cases {
        let status = harness.record(bad).await.unwrap_err();
        assert_eq!(bad_field(&status), field);
    }
    assert!(history(&harness, &subject).await.is_empty());

    let too_many: Vec<String> = (0..=ecrm_consent::MAX_CHECK_SUBJECTS)
        .map(|_| new_subject())
        .collect();
    let status = harness
        .check("newsletter", pb::Channel::Email, &too_many)
        .await
        .unwrap_err();
    assert_eq!(bad_field(&status), "subject_ids");
    let status = harness
        .check(
            "unknown",
            pb::Channel::Email,
            std::slice::from_ref(&subject),
        )
        .await
        .unwrap_err();
    assert_eq!(bad_field(&status), "purpose_key");
    let status = harness
        .check("newsletter", pb::Channel::Email, &["nope".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(bad_field(&status), "subject_ids[0]");
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[tokio::test]
async fn check_consent_over_ten_thousand_subjects_agrees_with_a_reference() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    harness
        .define(
            "orders",
            common::LawfulBasis::Contract,
            &[pb::Channel::Email],
        )
        .await;
    let subjects: Vec<String> = (0..ecrm_consent::MAX_CHECK_SUBJECTS)
        .map(|_| new_subject())
        .collect();
    let mut rng = Lcg(0x5eed);
    // What each of 300 subjects decided last on email; the rest were never asked.
    let mut expected: HashMap<String, pb::Reason> = HashMap::new();
    let mut lapsing = Vec::new();
    for subject in subjects.iter().take(300) {
        for _ in 0..=rng.next() % 3 {
            let (request, reason) = if rng.next().is_multiple_of(3) {
                (withdraw(subject, "newsletter"), pb::Reason::Withdrawn)
            } else {
                (grant(subject, "newsletter", &notice), pb::Reason::Granted)
            };
            harness.record(request).await.unwrap();
            expected.insert(subject.clone(), reason);
        }
        // A decision on another channel never counts for email.
        if rng.next().is_multiple_of(5) {
            let mut sms = grant(subject, "newsletter", &notice);
            sms.channel = pb::Channel::Sms.into();
            harness.record(sms).await.unwrap();
        }
        if rng.next().is_multiple_of(4) {
            lapsing.push(subject.clone());
        }
    }
    // Last, grants that each lapse a moment after they are recorded.
    let mut soon = chrono::Utc::now();
    for subject in &lapsing {
        soon = chrono::Utc::now() + chrono::Duration::milliseconds(300);
        let mut request = grant(subject, "newsletter", &notice);
        request.expires_at = Some(prost_types::Timestamp {
            seconds: soon.timestamp(),
            nanos: i32::try_from(soon.timestamp_subsec_nanos()).unwrap_or_default(),
        });
        harness.record(request).await.unwrap();
        expected.insert(subject.clone(), pb::Reason::Expired);
    }
    if let Ok(wait) = (soon - chrono::Utc::now()).to_std() {
        tokio::time::sleep(wait + std::time::Duration::from_millis(50)).await;
    }
    let decisions = harness
        .check("newsletter", pb::Channel::Email, &subjects)
        .await
        .unwrap();
    assert_eq!(decisions.len(), subjects.len());
    for (decision, subject) in decisions.iter().zip(&subjects) {
        assert_eq!(&decision.subject_id, subject, "in the order asked");
        let reason = expected
            .get(subject)
            .copied()
            .unwrap_or(pb::Reason::NeverAsked);
        assert_eq!(decision.reason(), reason, "{subject}");
        assert_eq!(decision.allowed, reason == pb::Reason::Granted);
    }
    // A contract purpose needs no consent.
    let contract = harness
        .check("orders", pb::Channel::Email, &subjects[..10])
        .await
        .unwrap();
    assert!(
        contract
            .iter()
            .all(|d| d.allowed && d.reason() == pb::Reason::Contract)
    );
}

#[tokio::test]
async fn concurrent_decisions_of_one_subject_form_one_chain() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    let subject = new_subject();
    let writes = (0..8).map(|i| {
        let request = if i % 2 == 0 {
            grant(&subject, "newsletter", &notice)
        } else {
            withdraw(&subject, "newsletter")
        };
        harness.record(request)
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    let entries = history(&harness, &subject).await;
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=8).collect::<Vec<_>>());
    assert!(verify(&harness).await.intact);
}

#[tokio::test]
async fn the_ledger_cannot_be_changed_by_the_service_and_tampering_is_reported() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    let (alice, bob) = (new_subject(), new_subject());
    for subject in [&alice, &bob] {
        harness
            .record(grant(subject, "newsletter", &notice))
            .await
            .unwrap();
        harness
            .record(withdraw(subject, "newsletter"))
            .await
            .unwrap();
        harness
            .record(grant(subject, "newsletter", &notice))
            .await
            .unwrap();
    }
    let before = verify(&harness).await;
    assert!(before.intact);
    assert_eq!(before.entries_checked, 6);

    // The service's own role may only add.
    for sql in [
        "UPDATE ledger SET decision = 'granted'",
        "DELETE FROM ledger",
        "TRUNCATE ledger",
    ] {
        let refused = harness.sql_as_service(sql).await.unwrap_err();
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }

    // A superuser turns Bob's withdrawal into a grant.
    let bob_withdrawal = history(&harness, &bob).await[1].clone();
    harness
        .superuser(format!(
            "UPDATE consent.ledger SET decision = 'granted' WHERE id = '{}'",
            bob_withdrawal.entry_id
        ))
        .await;
    let after = verify(&harness).await;
    assert!(!after.intact);
    assert_eq!(after.first_broken_entry_id, bob_withdrawal.entry_id);
    assert_eq!(after.first_broken_sequence, 2);
    assert!(after.problem.contains("hash"), "{}", after.problem);

    // Deleting Alice's first entry breaks her chain where it now starts.
    let alice_first = history(&harness, &alice).await[0].clone();
    harness
        .superuser(format!(
            "DELETE FROM consent.ledger WHERE id = '{}'",
            alice_first.entry_id
        ))
        .await;
    let only_alice = harness
        .consents()
        .verify_ledger(call(
            &harness.internal(),
            pb::VerifyLedgerRequest {
                subject_id: alice.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!only_alice.intact);
    assert_eq!(only_alice.first_broken_subject_id, alice);
    assert_eq!(only_alice.first_broken_sequence, 2);
    assert!(
        only_alice.problem.contains("missing"),
        "{}",
        only_alice.problem
    );
}

async fn checkpoint(harness: &Harness) -> pb::TakeCheckpointResponse {
    harness
        .consents()
        .take_checkpoint(call(&harness.internal(), pb::TakeCheckpointRequest {}))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn signed_checkpoints_catch_what_the_chains_alone_cannot() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    let (alice, bob, cy) = (new_subject(), new_subject(), new_subject());
    for subject in [&alice, &bob, &cy] {
        harness
            .record(grant(subject, "newsletter", &notice))
            .await
            .unwrap();
        harness
            .record(withdraw(subject, "newsletter"))
            .await
            .unwrap();
    }
    let first = checkpoint(&harness).await;
    assert!(first.created);
    assert_eq!(first.subjects, 3);
    assert_eq!(first.public_key.len(), 64);
    // Nothing moved: no new checkpoint.
    let same = checkpoint(&harness).await;
    assert!(!same.created);
    assert_eq!(same.checkpoint_id, first.checkpoint_id);
    // A new decision moves one head: the next checkpoint signs it.
    harness
        .record(grant(&cy, "newsletter", &notice))
        .await
        .unwrap();
    assert!(checkpoint(&harness).await.created);
    let intact = verify(&harness).await;
    assert!(intact.intact, "{intact:?}");
    assert_eq!(intact.checkpoints_checked, 2);

    // Removing Bob's withdrawal, the last entry of his chain, leaves a valid chain...
    let bob_withdrawal = history(&harness, &bob).await[1].clone();
    harness
        .superuser(format!(
            "DELETE FROM consent.ledger WHERE id = '{}'",
            bob_withdrawal.entry_id
        ))
        .await;
    // ...but not the head a checkpoint signed.
    let after = verify(&harness).await;
    assert!(!after.intact);
    assert_eq!(after.first_broken_subject_id, bob);
    assert_eq!(after.first_broken_sequence, 2);
    assert!(after.problem.contains("gone"), "{}", after.problem);
    // Nor will the service sign a checkpoint over it.
    let refused = harness
        .consents()
        .take_checkpoint(call(&harness.internal(), pb::TakeCheckpointRequest {}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    // Rewriting Alice's last entry with a chain that recomputes (through the service itself,
    // after deleting the original) is caught the same way.
    let alice_last = history(&harness, &alice).await[1].clone();
    harness
        .superuser(format!(
            "DELETE FROM consent.ledger WHERE id = '{}'",
            alice_last.entry_id
        ))
        .await;
    harness
        .record(grant(&alice, "newsletter", &notice))
        .await
        .unwrap();
    let only_alice = harness
        .consents()
        .verify_ledger(call(
            &harness.internal(),
            pb::VerifyLedgerRequest {
                subject_id: alice.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!only_alice.intact);
    assert_eq!(only_alice.first_broken_sequence, 2);
    assert!(
        only_alice.problem.contains("differs"),
        "{}",
        only_alice.problem
    );

    // And a checkpoint can be neither changed nor removed by the service's own role.
    for sql in [
        "UPDATE checkpoints SET subjects = 0",
        "DELETE FROM checkpoint_heads",
    ] {
        let refused = harness.sql_as_service(sql).await.unwrap_err();
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }
}

#[tokio::test]
async fn an_altered_checkpoint_is_reported() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    harness
        .record(grant(&new_subject(), "newsletter", &notice))
        .await
        .unwrap();
    checkpoint(&harness).await;
    harness
        .superuser("UPDATE consent.checkpoints SET subjects = subjects + 1".to_owned())
        .await;
    let altered = verify(&harness).await;
    assert!(!altered.intact);
    assert!(altered.problem.contains("digest"), "{}", altered.problem);
}

/// Opens a watch from `cursor` on `purposes`.
async fn watch(
    harness: &Harness,
    cursor: &str,
    purposes: &[&str],
) -> Result<tonic::Streaming<pb::WatchConsentChangesResponse>, tonic::Status> {
    harness
        .consents()
        .watch_consent_changes(call(
            &harness.internal(),
            pb::WatchConsentChangesRequest {
                cursor: cursor.to_owned(),
                purpose_keys: purposes.iter().map(|p| (*p).to_owned()).collect(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn next(
    stream: &mut tonic::Streaming<pb::WatchConsentChangesResponse>,
) -> (String, pb::LedgerEntry) {
    let message = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
        .await
        .expect("an entry within 10 s")
        .unwrap()
        .unwrap();
    (message.cursor, message.entry.unwrap())
}

#[tokio::test]
async fn watching_gives_every_entry_once_in_order_and_resumes_from_a_cursor() {
    let harness = Harness::start().await;
    let notice = newsletter(&harness).await;
    harness
        .define(
            "surveys",
            common::LawfulBasis::Consent,
            &[pb::Channel::Email],
        )
        .await;
    let surveys = harness.notice("surveys", "Short surveys.").await;
    let (ada, bo) = (new_subject(), new_subject());
    harness
        .record(grant(&ada, "newsletter", &notice))
        .await
        .unwrap();
    harness
        .record(grant(&ada, "surveys", &surveys))
        .await
        .unwrap();
    harness
        .record(grant(&bo, "newsletter", &notice))
        .await
        .unwrap();

    // Only the newsletter, from the start: what was recorded, then what comes.
    let mut stream = watch(&harness, "", &["newsletter"]).await.unwrap();
    let (_, first) = next(&mut stream).await;
    let (after_bo, second) = next(&mut stream).await;
    assert_eq!(
        [
            (first.subject_id.as_str(), first.decision()),
            (second.subject_id.as_str(), second.decision())
        ],
        [
            (ada.as_str(), pb::Decision::Granted),
            (bo.as_str(), pb::Decision::Granted)
        ]
    );
    harness.record(withdraw(&ada, "newsletter")).await.unwrap();
    let (_, third) = next(&mut stream).await;
    assert_eq!(
        (third.subject_id.as_str(), third.decision()),
        (ada.as_str(), pb::Decision::Withdrawn)
    );
    assert_eq!(third.purpose_key, "newsletter");
    drop(stream);

    // Resuming after Bo's grant gives the withdrawal, and nothing before it.
    let mut resumed = watch(&harness, &after_bo, &[]).await.unwrap();
    let (_, again) = next(&mut resumed).await;
    assert_eq!(again.entry_id, third.entry_id);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), resumed.message())
            .await
            .is_err(),
        "nothing else was recorded"
    );

    // Every purpose, from the start: all four entries.
    let mut all = watch(&harness, "", &[]).await.unwrap();
    let mut purposes = Vec::new();
    for _ in 0..4 {
        purposes.push(next(&mut all).await.1.purpose_key);
    }
    assert_eq!(
        purposes,
        ["newsletter", "surveys", "newsletter", "newsletter"]
    );

    let bad = watch(&harness, "not a cursor", &[]).await.unwrap_err();
    assert_eq!(bad_field(&bad), "cursor");
    let bad = watch(&harness, "", &["Not A Key"]).await.unwrap_err();
    assert_eq!(bad_field(&bad), "purpose_keys[0]");
}
