//! Tokens for tests: a signing key of the test's own, trusted by verifiers built here, to mint
//! tokens for any principal and scope without running the identity service.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecrm_auth::{
    Claims, PrincipalKind, Scopes, StaticTrust, TokenSigner, TrustSnapshot, Verifier,
    VerifierConfig,
};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The issuer of test tokens.
pub const TEST_ISSUER: &str = "ecrm-test-identity";

/// Who a test token is for and what it carries.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub subject: String,
    pub kind: PrincipalKind,
    pub partner_id: Option<String>,
    pub scopes: Scopes,
    pub audience: String,
    /// Seconds from now; negative for a token that has already expired.
    pub expires_in: i64,
    /// Seconds from now before which the token is not valid.
    pub not_before_in: i64,
}

impl TokenSpec {
    /// An internal service's token for `audience` with `scopes`, valid for 15 minutes.
    pub fn internal(audience: &str, scopes: Scopes) -> Self {
        Self {
            subject: uuid::Uuid::now_v7().to_string(),
            kind: PrincipalKind::Internal,
            partner_id: None,
            scopes,
            audience: audience.to_owned(),
            expires_in: 15 * 60,
            not_before_in: 0,
        }
    }

    /// A partner's token, bound to `partner_id`.
    pub fn partner(audience: &str, partner_id: &str, scopes: Scopes) -> Self {
        Self {
            kind: PrincipalKind::Partner,
            partner_id: Some(partner_id.to_owned()),
            ..Self::internal(audience, scopes)
        }
    }

    /// An operator's token.
    pub fn operator(audience: &str, scopes: Scopes) -> Self {
        Self {
            kind: PrincipalKind::Operator,
            ..Self::internal(audience, scopes)
        }
    }
}

/// A test's token issuer: its key, and the trust snapshot its verifiers fetch.
pub struct TestAuth {
    signer: TokenSigner,
    trust: Arc<StaticTrust>,
}

impl std::fmt::Debug for TestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAuth")
            .field("kid", &self.signer.kid())
            .finish()
    }
}

impl Default for TestAuth {
    fn default() -> Self {
        Self::new()
    }
}

impl TestAuth {
    /// A fresh Ed25519 key, published in the trust snapshot. Panics only if the system random
    /// generator fails, when no test can run anyway.
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = match Ed25519KeyPair::generate_pkcs8(&rng) {
            Ok(pkcs8) => pkcs8,
            Err(_) => panic!("the system random generator failed"),
        };
        let pair = match Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()) {
            Ok(pair) => pair,
            Err(_) => panic!("ring rejected the key it generated"),
        };
        let kid = format!("test-{}", uuid::Uuid::new_v4().simple());
        let trust = StaticTrust::new(TrustSnapshot {
            keys: vec![(kid.clone(), pair.public_key().as_ref().to_vec())],
            ..TrustSnapshot::default()
        });
        Self {
            signer: TokenSigner::from_pkcs8(&kid, pkcs8.as_ref()),
            trust: Arc::new(trust),
        }
    }

    /// A verifier for `audience` trusting this issuer, loaded and ready. Changes made with
    /// [`TestAuth::revoke`] or [`TestAuth::disable`] reach it at its next refresh.
    pub async fn verifier(&self, audience: &str) -> Verifier {
        // Refreshed only when a test says so: never stale, however long a benchmark runs.
        let config = VerifierConfig {
            refresh_interval: Duration::from_secs(3600),
            max_staleness: Duration::from_secs(24 * 3600),
            ..VerifierConfig::new(TEST_ISSUER, audience)
        };
        let verifier = Verifier::new(config, self.trust.clone());
        if let Err(error) = verifier.refresh().await {
            panic!("a static trust source cannot fail: {error}");
        }
        verifier
    }

    /// The signed token for `spec`.
    pub fn token(&self, spec: &TokenSpec) -> String {
        self.sign(&self.claims(spec))
    }

    /// The claims [`TestAuth::token`] would sign, to alter before [`TestAuth::sign`].
    pub fn claims(&self, spec: &TokenSpec) -> Claims {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Claims {
            iss: TEST_ISSUER.to_owned(),
            sub: spec.subject.clone(),
            aud: spec.audience.clone(),
            exp: now + spec.expires_in,
            iat: now,
            nbf: now + spec.not_before_in,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: spec.scopes.to_claim(),
            kind: spec.kind,
            partner_id: spec.partner_id.clone(),
        }
    }

    /// Signs any claims with the trusted key.
    pub fn sign(&self, claims: &Claims) -> String {
        match self.signer.sign(claims) {
            Ok(token) => token,
            Err(error) => panic!("cannot sign a test token: {error}"),
        }
    }

    /// Revokes the token with `jti` from the verifiers' next refresh on.
    pub fn revoke(&self, jti: &str) {
        let mut snapshot = self.trust.get();
        snapshot.revoked_tokens.push(jti.to_owned());
        self.trust.set(snapshot);
    }

    /// Disables `subject` from the verifiers' next refresh on.
    pub fn disable(&self, subject: &str) {
        let mut snapshot = self.trust.get();
        snapshot.disabled_subjects.push(subject.to_owned());
        self.trust.set(snapshot);
    }
}

/// Internal services' tokens for a test's calls between services: minted here, trusted by the
/// test's verifiers, as identity's would be by the services'.
impl ecrm_auth::TokenSource for TestAuth {
    fn token<'a>(
        &'a self,
        audience: &'a str,
        scopes: &'a [String],
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<String, tonic::Status>> + Send + 'a>,
    > {
        let scopes = ecrm_auth::Scopes::from_claim(&scopes.join(" "));
        let token = TestAuth::token(self, &TokenSpec::internal(audience, scopes));
        Box::pin(async move { Ok(token) })
    }
}
