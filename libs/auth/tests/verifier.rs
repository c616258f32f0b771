//! The verifier against forged, altered and stale tokens: every one is refused, for the right
//! reason, and good tokens pass.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecrm_auth::{
    AuthError, Claims, PrincipalKind, Scope, Scopes, SourceError, StaticTrust, TokenSigner,
    TrustSnapshot, TrustSource, Verifier, VerifierConfig,
};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

const ISSUER: &str = "ecrm-identity";
const AUDIENCE: &str = "profiles";

/// A key of ours, trusted by the verifiers built from it.
struct Key {
    kid: String,
    pkcs8: Vec<u8>,
    pair: Ed25519KeyPair,
}

impl Key {
    fn new(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            pair,
        }
    }

    fn public(&self) -> (String, Vec<u8>) {
        (self.kid.clone(), self.pair.public_key().as_ref().to_vec())
    }

    fn sign(&self, claims: &Claims) -> String {
        TokenSigner::from_pkcs8(&self.kid, &self.pkcs8)
            .sign(claims)
            .unwrap()
    }

    /// A token with any header, signed with this key (EdDSA) over `header.payload`.
    fn sign_raw(&self, header: &serde_json::Value, claims: &Claims) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_string(claims).unwrap())
        );
        let signature = self.pair.sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Claims {
    Claims {
        iss: ISSUER.to_owned(),
        sub: "0193b8a0-0000-7000-8000-00000000000a".to_owned(),
        aud: AUDIENCE.to_owned(),
        exp: now() + 900,
        iat: now(),
        nbf: now(),
        jti: uuid::Uuid::new_v4().to_string(),
        scope: "profiles.read".to_owned(),
        kind: PrincipalKind::Internal,
        partner_id: None,
    }
}

async fn verifier_trusting(keys: &[&Key]) -> (Verifier, Arc<StaticTrust>) {
    let trust = Arc::new(StaticTrust::new(TrustSnapshot {
        keys: keys.iter().map(|k| k.public()).collect(),
        ..TrustSnapshot::default()
    }));
    let verifier = Verifier::new(VerifierConfig::new(ISSUER, AUDIENCE), trust.clone());
    verifier.refresh().await.unwrap();
    (verifier, trust)
}

#[tokio::test]
async fn a_good_token_gives_its_principal() {
    let key = Key::new("k1");
    let (verifier, _) = verifier_trusting(&[&key]).await;
    let claims = claims();

    let principal = verifier.verify(&key.sign(&claims)).unwrap();

    assert_eq!(principal.subject, claims.sub);
    assert_eq!(principal.kind, PrincipalKind::Internal);
    assert_eq!(principal.scopes, Scopes::empty().with(Scope::ProfilesRead));
    assert_eq!(principal.token_id, claims.jti);
    assert_eq!(principal.partner_id, None);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let key = Key::new("k1");
    let (verifier, _) = verifier_trusting(&[&key]).await;
    let leeway = VerifierConfig::DEFAULT_LEEWAY.as_secs() as i64;

    let expired = Claims {
        exp: now() - leeway - 5,
        ..claims()
    };
    assert_eq!(
        verifier.verify(&key.sign(&expired)),
        Err(AuthError::Expired)
    );
    let within_leeway = Claims {
        exp: now() - leeway / 2,
        ..claims()
    };
    assert!(verifier.verify(&key.sign(&within_leeway)).is_ok());
    let early = Claims {
        nbf: now() + leeway + 60,
        ..claims()
    };
    assert_eq!(
        verifier.verify(&key.sign(&early)),
        Err(AuthError::NotYetValid)
    );
}

#[tokio::test]
async fn another_audience_or_issuer_is_refused() {
    let key = Key::new("k1");
    let (verifier, _) = verifier_trusting(&[&key]).await;

    let other_aud = Claims {
        aud: "consent".to_owned(),
        ..claims()
    };
    assert_eq!(
        verifier.verify(&key.sign(&other_aud)),
        Err(AuthError::WrongAudience)
    );
    let other_iss = Claims {
        iss: "someone-else".to_owned(),
        ..claims()
    };
    assert_eq!(
        verifier.verify(&key.sign(&other_iss)),
        Err(AuthError::WrongIssuer)
    );
}

#[tokio::test]
async fn a_tampered_payload_fails_the_signature() {
    let key = Key::new("k1");
    let (verifier, _) = verifier_trusting(&[&key]).await;
    let token = key.sign(&claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let escalated = Claims {
        scope: Scopes::all().to_claim(),
        ..claims()
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&escalated).unwrap());
    parts[1] = &payload;

    assert_eq!(
        verifier.verify(&parts.join(".")),
        Err(AuthError::BadSignature)
    );
}

#[tokio::test]
async fn alg_none_and_hs256_keyed_with_the_public_key_are_refused() {
    let key = Key::new("k1");
    let (verifier, _) = verifier_trusting(&[&key]).await;
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims()).unwrap());

    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let unsigned = format!("{none_header}.{payload}.");
    assert_eq!(verifier.verify(&unsigned), Err(AuthError::Malformed));

    let hs_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    let message = format!("{hs_header}.{payload}");
    let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.public().1);
    let mac = ring::hmac::sign(&mac_key, message.as_bytes());
    let confused = format!("{message}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(
        verifier.verify(&confused),
        Err(AuthError::AlgorithmNotAllowed)
    );
}

#[tokio::test]
async fn a_token_naming_its_own_key_is_refused_even_when_well_signed() {
    let key = Key::new("k1");
    let (verifier, _) = verifier_trusting(&[&key]).await;
    let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(key.public().1)});

    let with_jku = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1", "jku": "https://attacker.example/jwks"});
    assert_eq!(
        verifier.verify(&key.sign_raw(&with_jku, &claims())),
        Err(AuthError::EmbeddedKey)
    );
    let with_jwk = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1", "jwk": jwk});
    assert_eq!(
        verifier.verify(&key.sign_raw(&with_jwk, &claims())),
        Err(AuthError::EmbeddedKey)
    );
    let plain = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"});
    assert!(verifier.verify(&key.sign_raw(&plain, &claims())).is_ok());
}

#[tokio::test]
async fn an_unknown_key_and_garbage_are_refused() {
    let trusted = Key::new("k1");
    let stranger = Key::new("k2");
    let (verifier, _) = verifier_trusting(&[&trusted]).await;

    assert_eq!(
        verifier.verify(&stranger.sign(&claims())),
        Err(AuthError::UnknownKey)
    );
    // A stranger's key under a trusted kid fails the signature.
    let impostor = Key {
        kid: "k1".to_owned(),
        ..Key::new("k1")
    };
    assert_eq!(
        verifier.verify(&impostor.sign(&claims())),
        Err(AuthError::BadSignature)
    );
    assert_eq!(verifier.verify("not-a-token"), Err(AuthError::Malformed));
    assert_eq!(verifier.verify(""), Err(AuthError::Malformed));
}

#[tokio::test]
async fn partner_tokens_must_name_their_partner_and_only_theirs_may() {
    let key = Key::new("k1");
    let (verifier, _) = verifier_trusting(&[&key]).await;

    let partner = Claims {
        kind: PrincipalKind::Partner,
        partner_id: Some("air-example".to_owned()),
        ..claims()
    };
    let principal = verifier.verify(&key.sign(&partner)).unwrap();
    assert_eq!(principal.partner_id.as_deref(), Some("air-example"));

    let anonymous_partner = Claims {
        partner_id: None,
        ..partner.clone()
    };
    assert_eq!(
        verifier.verify(&key.sign(&anonymous_partner)),
        Err(AuthError::Malformed)
    );
    let internal_with_partner = Claims {
        kind: PrincipalKind::Internal,
        ..partner
    };
    assert_eq!(
        verifier.verify(&key.sign(&internal_with_partner)),
        Err(AuthError::Malformed)
    );
}

#[tokio::test]
async fn revoked_tokens_and_disabled_principals_are_refused_after_a_refresh() {
    let key = Key::new("k1");
    let (verifier, trust) = verifier_trusting(&[&key]).await;
    let revoked = claims();
    let disabled = Claims {
        sub: "0193b8a0-0000-7000-8000-0000000000ff".to_owned(),
        ..claims()
    };
    let (revoked_token, disabled_token) = (key.sign(&revoked), key.sign(&disabled));
    assert!(verifier.verify(&revoked_token).is_ok());

    trust.set(TrustSnapshot {
        keys: vec![key.public()],
        revoked_tokens: vec![revoked.jti.clone()],
        disabled_subjects: vec![disabled.sub.clone()],
    });
    verifier.refresh().await.unwrap();

    assert_eq!(verifier.verify(&revoked_token), Err(AuthError::Revoked));
    assert_eq!(verifier.verify(&disabled_token), Err(AuthError::Disabled));
    assert!(verifier.verify(&key.sign(&claims())).is_ok());
}

/// A source that counts its fetches.
struct Counting {
    inner: Arc<StaticTrust>,
    fetches: AtomicUsize,
}

impl TrustSource for Counting {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<TrustSnapshot, SourceError>> + Send + '_>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch()
    }
}

#[tokio::test]
async fn a_new_key_is_fetched_on_first_sight_but_forged_kids_do_not_flood_identity() {
    let old = Key::new("old");
    let new = Key::new("new");
    let trust = Arc::new(StaticTrust::new(TrustSnapshot {
        keys: vec![old.public()],
        ..TrustSnapshot::default()
    }));
    let source = Arc::new(Counting {
        inner: trust.clone(),
        fetches: AtomicUsize::new(0),
    });
    let config = VerifierConfig {
        refresh_interval: Duration::from_secs(3600),
        ..VerifierConfig::new(ISSUER, AUDIENCE)
    };
    let verifier = Verifier::new(config, source.clone());
    verifier.refresh().await.unwrap();
    // Published after the verifier's last refresh.
    trust.set(TrustSnapshot {
        keys: vec![old.public(), new.public()],
        ..TrustSnapshot::default()
    });

    assert!(verifier.authenticate(&new.sign(&claims())).await.is_ok());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);

    let forger = Key::new("forged");
    for _ in 0..20 {
        assert_eq!(
            verifier.authenticate(&forger.sign(&claims())).await,
            Err(AuthError::UnknownKey)
        );
    }
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        2,
        "refreshed for forged kids"
    );
}

/// A source that works until told to fail.
struct Flaky {
    inner: Arc<StaticTrust>,
    failing: std::sync::atomic::AtomicBool,
}

impl TrustSource for Flaky {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<TrustSnapshot, SourceError>> + Send + '_>> {
        if self.failing.load(Ordering::SeqCst) {
            Box::pin(async {
                Err(SourceError(Box::new(std::io::Error::other(
                    "identity unreachable",
                ))))
            })
        } else {
            self.inner.fetch()
        }
    }
}

#[tokio::test]
async fn calls_are_refused_once_keys_and_revocations_are_too_old_to_trust() {
    let key = Key::new("k1");
    let source = Arc::new(Flaky {
        inner: Arc::new(StaticTrust::new(TrustSnapshot {
            keys: vec![key.public()],
            ..TrustSnapshot::default()
        })),
        failing: std::sync::atomic::AtomicBool::new(false),
    });
    let config = VerifierConfig {
        max_staleness: Duration::from_secs(2),
        ..VerifierConfig::new(ISSUER, AUDIENCE)
    };
    let verifier = Verifier::new(config, source.clone());
    verifier.refresh().await.unwrap();
    let token = key.sign(&claims());
    assert!(verifier.verify(&token).is_ok());

    source.failing.store(true, Ordering::SeqCst);
    assert!(verifier.refresh().await.is_err());
    assert!(
        verifier.verify(&token).is_ok(),
        "a failed refresh keeps the last snapshot for a while"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(verifier.verify(&token), Err(AuthError::Stale));
    assert_eq!(
        tonic::Status::from(AuthError::Stale).code(),
        tonic::Code::Unavailable
    );

    source.failing.store(false, Ordering::SeqCst);
    verifier.refresh().await.unwrap();
    assert!(verifier.verify(&token).is_ok());
}

#[tokio::test]
async fn a_token_checked_before_is_still_refused_once_expired_or_its_key_is_withdrawn() {
    let key = Key::new("k1");
    let trust = Arc::new(StaticTrust::new(TrustSnapshot {
        keys: vec![key.public()],
        ..TrustSnapshot::default()
    }));
    let config = VerifierConfig {
        leeway: Duration::ZERO,
        ..VerifierConfig::new(ISSUER, AUDIENCE)
    };
    let verifier = Verifier::new(config, trust.clone());
    verifier.refresh().await.unwrap();

    let short = key.sign(&Claims {
        exp: now() + 1,
        ..claims()
    });
    let long = key.sign(&claims());
    assert!(verifier.verify(&short).is_ok());
    assert!(verifier.verify(&long).is_ok());

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(verifier.verify(&short), Err(AuthError::Expired));
    assert!(verifier.verify(&long).is_ok());

    trust.set(TrustSnapshot::default());
    verifier.refresh().await.unwrap();
    assert_eq!(verifier.verify(&long), Err(AuthError::UnknownKey));
}
