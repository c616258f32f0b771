//! Verifying one token, as every RPC does: signature, claims, revocation lookups.
//! Run: `cargo bench -p ecrm-auth --bench verify`.
#![expect(clippy::unwrap_used, reason = "a benchmark fails by panicking")]

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use ecrm_auth::{
    Claims, PrincipalKind, Scopes, StaticTrust, TokenSigner, TrustSnapshot, Verifier,
    VerifierConfig,
};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

fn setup() -> (Verifier, String, Claims, TokenSigner) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // A realistic trust set: three published keys, a thousand live revocations.
    let mut keys = vec![("active".to_owned(), pair.public_key().as_ref().to_vec())];
    for kid in ["next", "retired"] {
        let other = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let other = Ed25519KeyPair::from_pkcs8(other.as_ref()).unwrap();
        keys.push((kid.to_owned(), other.public_key().as_ref().to_vec()));
    }
    let trust = StaticTrust::new(TrustSnapshot {
        keys,
        revoked_tokens: (0..1000).map(|i| format!("revoked-{i}")).collect(),
        disabled_subjects: (0..100).map(|i| format!("disabled-{i}")).collect(),
    });
    let verifier = Verifier::new(VerifierConfig::new("ecrm-identity", "profiles"), trust);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(verifier.refresh()).unwrap();
    let claims = Claims {
        iss: "ecrm-identity".to_owned(),
        sub: uuid::Uuid::now_v7().to_string(),
        aud: "profiles".to_owned(),
        exp: now + 900,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: Scopes::all().to_claim(),
        kind: PrincipalKind::Internal,
        partner_id: None,
    };
    let signer = TokenSigner::from_pkcs8("active", pkcs8.as_ref());
    let token = signer.sign(&claims).unwrap();
    (verifier, token, claims, signer)
}

fn verification(c: &mut Criterion) {
    let (verifier, token, claims, signer) = setup();
    assert!(verifier.verify(&token).is_ok());
    // A token seen before: what nearly every call pays.
    c.bench_function("verify_token/seen_before", |b| {
        b.iter(|| verifier.verify(black_box(&token)).unwrap())
    });
    // A token seen for the first time: the signature check.
    c.bench_function("verify_token/first_sight", |b| {
        b.iter_batched(
            || {
                let mut claims = claims.clone();
                claims.jti = uuid::Uuid::new_v4().to_string();
                signer.sign(&claims).unwrap()
            },
            |fresh| verifier.verify(black_box(&fresh)).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
