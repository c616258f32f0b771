//! Signing key rotation: the next key is published before it signs, the retired key verifies
//! until its tokens have expired, and no call fails across a rotation under load.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::{Connection, RunQueryDsl};
use ecrm_proto::ecrm::identity::v1 as pb;
use support::{ADMIN_PASSWORD, Harness, REFRESH, authed, within};
use tonic::Code;

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn by_state(keys: &[pb::SigningKey], state: pb::SigningKeyState) -> Vec<&pb::SigningKey> {
    keys.iter().filter(|k| k.state() == state).collect()
}

async fn rotate(harness: &Harness) -> Vec<pb::SigningKey> {
    harness
        .keys()
        .rotate_signing_keys(authed(
            pb::RotateSigningKeysRequest {},
            &harness.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .keys
}

#[tokio::test]
async fn rotation_promotes_the_published_next_key_and_retires_the_active_one() {
    let harness = Harness::start().await;
    tokio::time::sleep(support::PUBLISH_DELAY).await;
    let before = harness.call_with(&harness.admin_token).await.unwrap().keys;
    let active = by_state(&before, pb::SigningKeyState::Active)[0]
        .kid
        .clone();
    let next = by_state(&before, pb::SigningKeyState::Next)[0].kid.clone();
    assert_eq!(kid_of(&harness.admin_token), active);
    let jwks = harness
        .tokens()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        jwks.keys.iter().any(|k| k.kid == next),
        "next key not published before it signs"
    );

    let after = rotate(&harness).await;

    let retired = by_state(&after, pb::SigningKeyState::Retired);
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].kid, active);
    let verify_until = retired[0].verify_until.unwrap().seconds;
    let retired_at = retired[0].retired_at.unwrap().seconds;
    assert!(
        verify_until - retired_at >= 15 * 60 + 60,
        "retired key must outlive its tokens"
    );
    assert_eq!(by_state(&after, pb::SigningKeyState::Active)[0].kid, next);
    let new_next = &by_state(&after, pb::SigningKeyState::Next)[0].kid;
    assert!(new_next != &next && new_next != &active);

    // Old tokens still work, new ones are signed by the promoted key.
    assert!(harness.call_with(&harness.admin_token).await.is_ok());
    let fresh = harness
        .login("admin", ADMIN_PASSWORD, &["identity.admin"], "identity")
        .await
        .unwrap();
    assert_eq!(kid_of(&fresh.access_token), next);
    assert!(harness.call_with(&fresh.access_token).await.is_ok());
}

#[tokio::test]
async fn tokens_of_a_retired_key_are_refused_once_it_stops_verifying() {
    let harness = Harness::start().await;
    let old_token = harness.admin_token.clone();
    let old_kid = kid_of(&old_token);
    tokio::time::sleep(support::PUBLISH_DELAY).await;
    rotate(&harness).await;
    assert!(harness.call_with(&old_token).await.is_ok());

    // Time passes: the retired key's overlap ends (every token it signed has expired).
    let admin_url = harness.database.admin_url();
    tokio::task::spawn_blocking(move || {
        let mut conn = diesel::PgConnection::establish(admin_url.expose()).unwrap();
        diesel::sql_query("UPDATE identity.signing_keys SET verify_until = now() - interval '1 second' WHERE kid = $1")
            .bind::<diesel::sql_types::Text, _>(old_kid)
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();

    let bound = REFRESH + Duration::from_millis(1000);
    let refused = within(bound, || async {
        matches!(harness.call_with(&old_token).await, Err(s) if s.code() == Code::Unauthenticated)
    })
    .await;
    assert!(
        refused.is_some(),
        "retired key still verifying after its overlap"
    );
    let jwks = harness
        .tokens()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        jwks.keys.len(),
        2,
        "only the active and next keys remain published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_call_fails_across_rotations_under_concurrent_load() {
    let harness = Arc::new(Harness::start().await);
    let failures = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();

    // Six services, each with its own account, logging in and calling in a loop.
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (account, secret) = harness
            .create_account(pb::PrincipalKind::Internal, "", &["identity.admin"])
            .await;
        let (harness, failures, calls, stop) = (
            harness.clone(),
            failures.clone(),
            calls.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                // A fresh token each round, so tokens of every key in turn are used.
                let result = match harness
                    .client_token(&account.client_id, &secret, &["identity.admin"], "identity")
                    .await
                {
                    Ok(token) => harness.call_with(&token.access_token).await.map(drop),
                    Err(status) => Err(status),
                };
                calls.fetch_add(1, Ordering::Relaxed);
                if let Err(status) = result {
                    eprintln!("failed call: {status:?}");
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    for _ in 0..4 {
        tokio::time::sleep(support::PUBLISH_DELAY + REFRESH).await;
        rotate(&harness).await;
    }
    tokio::time::sleep(REFRESH * 2).await;
    stop.cancel();
    for worker in workers {
        worker.await.unwrap();
    }

    assert!(
        calls.load(Ordering::Relaxed) > 20,
        "too few calls to show anything"
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    let keys = harness.call_with(&harness.admin_token).await.unwrap().keys;
    assert_eq!(by_state(&keys, pb::SigningKeyState::Retired).len(), 4);
}

#[tokio::test]
async fn a_next_key_too_young_for_verifiers_to_have_is_not_promoted() {
    let harness = Harness::start().await;
    tokio::time::sleep(support::PUBLISH_DELAY).await;
    rotate(&harness).await;

    // The key published by that rotation is brand new: promoting it now could sign tokens that
    // some verifier cannot check yet.
    let refused = harness
        .keys()
        .rotate_signing_keys(authed(
            pb::RotateSigningKeysRequest {},
            &harness.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("rotate again in"),
        "{}",
        refused.message()
    );

    tokio::time::sleep(support::PUBLISH_DELAY).await;
    rotate(&harness).await;
}
