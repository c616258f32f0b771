//! Whatever arrives as a bearer token: the verifier answers without panicking, and nothing
//! passes (the only key it trusts signed nothing).
#![no_main]

use std::sync::{Arc, LazyLock};

use ecrm_auth::{StaticTrust, TrustSnapshot, Verifier, VerifierConfig};
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("a key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key");
    let trust = Arc::new(StaticTrust::new(TrustSnapshot {
        keys: vec![("k1".to_owned(), pair.public_key().as_ref().to_vec())],
        ..TrustSnapshot::default()
    }));
    let verifier = Verifier::new(VerifierConfig::new("ecrm-identity", "profiles"), trust);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(verifier.refresh())
        .expect("the keys load");
    verifier
});

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        assert!(VERIFIER.verify(token).is_err());
    }
});
