//! Token parsing against arbitrary input: whatever arrives as a bearer token, the verifier
//! answers without panicking, and nothing but the exact token identity signed passes.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecrm_auth::{
    Claims, PrincipalKind, StaticTrust, TokenSigner, TrustSnapshot, Verifier, VerifierConfig,
};
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

const ISSUER: &str = "ecrm-identity";
const AUDIENCE: &str = "profiles";
const KID: &str = "k1";

/// A verifier trusting one key, and a token that key signed.
struct Fixture {
    verifier: Verifier,
    token: String,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let trust = Arc::new(StaticTrust::new(TrustSnapshot {
        keys: vec![(KID.to_owned(), pair.public_key().as_ref().to_vec())],
        ..TrustSnapshot::default()
    }));
    let verifier = Verifier::new(VerifierConfig::new(ISSUER, AUDIENCE), trust);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(verifier.refresh())
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Claims {
        iss: ISSUER.to_owned(),
        sub: "0193b8a0-0000-7000-8000-00000000000a".to_owned(),
        aud: AUDIENCE.to_owned(),
        // Long enough for any run of these properties.
        exp: now + 3600,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: "profiles.read".to_owned(),
        kind: PrincipalKind::Internal,
        partner_id: None,
    };
    let token = TokenSigner::from_pkcs8(KID, pkcs8.as_ref())
        .sign(&claims)
        .unwrap();
    Fixture { verifier, token }
});

/// Characters of a base64url token and its dots, and a few that are not.
const TOKEN_CHARS: &str = "[A-Za-z0-9_\\-.=+/ ]";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_is_refused_without_panicking(text in any::<String>()) {
        prop_assert!(FIXTURE.verifier.verify(&text).is_err());
    }

    #[test]
    fn arbitrary_dotted_base64_is_refused_without_panicking(
        parts in prop::collection::vec(prop::string::string_regex(&format!("{TOKEN_CHARS}{{0,120}}")).unwrap(), 0..5)
    ) {
        prop_assert!(FIXTURE.verifier.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn arbitrary_json_in_a_token_shape_is_refused_without_panicking(
        header in any::<String>(),
        payload in any::<String>(),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature),
        );
        prop_assert!(FIXTURE.verifier.verify(&token).is_err());
    }

    #[test]
    fn a_signed_token_with_any_character_changed_is_refused(
        position in any::<prop::sample::Index>(),
        replacement in prop::char::range('-', 'z'),
    ) {
        let token = &FIXTURE.token;
        let at = position.index(token.len());
        let mut changed = token.clone();
        changed.replace_range(at..=at, &replacement.to_string());
        prop_assume!(&changed != token);
        prop_assert!(FIXTURE.verifier.verify(&changed).is_err());
    }

    #[test]
    fn a_signed_token_cut_or_extended_is_refused(
        keep in any::<prop::sample::Index>(),
        tail in prop::string::string_regex(&format!("{TOKEN_CHARS}{{0,8}}")).unwrap(),
    ) {
        let token = &FIXTURE.token;
        let changed = format!("{}{tail}", &token[..keep.index(token.len())]);
        prop_assume!(&changed != token);
        prop_assert!(FIXTURE.verifier.verify(&changed).is_err());
    }
}

#[test]
fn the_token_these_properties_change_is_valid() {
    assert!(FIXTURE.verifier.verify(&FIXTURE.token).is_ok());
}
