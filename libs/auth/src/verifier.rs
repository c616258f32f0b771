//! Verifying tokens against the identity service's keys and revocations, held in memory and
//! refreshed in the background: no call to identity on any request.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio_util::sync::CancellationToken;

use crate::claims::{Claims, MAX_LEEWAY};
use crate::error::AuthError;
use crate::principal::{Principal, PrincipalKind};
use crate::scope::Scopes;

/// An unknown `kid` triggers a refresh at most this often, so forged kids cannot make a
/// verifier hammer the identity service.
const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);

/// Tokens whose signature was checked are remembered, up to this many, so a client that sends
/// the same token on every call pays for the signature check once. When full it starts over.
const CACHE_CAPACITY: usize = 10_000;

/// A fetch that takes longer has failed: a hung source must not hold up callers waiting on it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the identity service publishes for verifiers: its public keys and its revocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSnapshot {
    /// (`kid`, raw 32-byte Ed25519 public key) of every key that may have signed a live token.
    pub keys: Vec<(String, Vec<u8>)>,
    /// `jti` of revoked tokens that have not expired yet.
    pub revoked_tokens: Vec<String>,
    /// `sub` of disabled principals.
    pub disabled_subjects: Vec<String>,
}

/// A failure to fetch the snapshot; the verifier keeps the one it has.
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch signing keys and revocations")]
pub struct SourceError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where a verifier gets its [`TrustSnapshot`]: the identity service over gRPC for other
/// services, its own database for identity itself, a fixed value in tests.
pub trait TrustSource: Send + Sync + 'static {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<TrustSnapshot, SourceError>> + Send + '_>>;
}

/// A snapshot held in memory, changed by its owner: for tests that mint their own tokens.
#[derive(Debug, Default)]
pub struct StaticTrust(Mutex<TrustSnapshot>);

impl StaticTrust {
    pub fn new(snapshot: TrustSnapshot) -> Self {
        Self(Mutex::new(snapshot))
    }

    /// Replaces what the next fetch returns.
    pub fn set(&self, snapshot: TrustSnapshot) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    pub fn get(&self) -> TrustSnapshot {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl TrustSource for StaticTrust {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<TrustSnapshot, SourceError>> + Send + '_>> {
        let snapshot = self.get();
        Box::pin(async move { Ok(snapshot) })
    }
}

impl<T: TrustSource> TrustSource for Arc<T> {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<TrustSnapshot, SourceError>> + Send + '_>> {
        T::fetch(self)
    }
}

/// What a verifier checks tokens against.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The only accepted `aud`: this service's name.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`; capped at [`MAX_LEEWAY`].
    pub leeway: Duration,
    /// How often keys and revocations are fetched: a revocation or a disabled principal takes
    /// effect within this interval (plus one fetch).
    pub refresh_interval: Duration,
    /// How long the last successful fetch may be relied on. Past it (the identity service
    /// unreachable), calls are refused as UNAVAILABLE: revocations must not silently stop
    /// taking effect. Must exceed `refresh_interval` plus a fetch (up to 10 s).
    pub max_staleness: Duration,
}

impl VerifierConfig {
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(60);

    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Self::DEFAULT_LEEWAY,
            refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            max_staleness: Self::DEFAULT_MAX_STALENESS,
        }
    }
}

/// The snapshot compiled for lookups.
#[derive(Default)]
struct Trust {
    keys: HashMap<String, DecodingKey>,
    revoked: HashSet<String>,
    disabled: HashSet<String>,
    /// When it was fetched; `None` before the first fetch.
    fetched_at: Option<Instant>,
}

impl From<TrustSnapshot> for Trust {
    fn from(snapshot: TrustSnapshot) -> Self {
        Self {
            fetched_at: Some(Instant::now()),
            keys: snapshot
                .keys
                .into_iter()
                .map(|(kid, key)| (kid, DecodingKey::from_ed_der(&key)))
                .collect(),
            revoked: snapshot.revoked_tokens.into_iter().collect(),
            disabled: snapshot.disabled_subjects.into_iter().collect(),
        }
    }
}

/// A token whose signature and claims were checked: what is left to check on each use.
struct Checked {
    principal: Principal,
    kid: String,
}

struct Inner {
    validation: Validation,
    leeway_secs: i64,
    checked: Mutex<HashMap<String, Checked>>,
    refresh_interval: Duration,
    max_staleness: Duration,
    trust: ArcSwap<Trust>,
    source: Box<dyn TrustSource>,
    /// Serialises fetches.
    fetching: tokio::sync::Mutex<()>,
    /// When an unknown `kid` last caused a fetch: the only fetches rate-limited.
    last_on_demand: tokio::sync::Mutex<Option<Instant>>,
}

/// Verifies bearer tokens; cheap to clone (one shared state).
#[derive(Clone)]
pub struct Verifier(Arc<Inner>);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let trust = self.0.trust.load();
        f.debug_struct("Verifier")
            .field("keys", &trust.keys.len())
            .field("revoked", &trust.revoked.len())
            .field("disabled", &trust.disabled.len())
            .finish()
    }
}

impl Verifier {
    /// A verifier that trusts nothing until its first refresh.
    pub fn new(config: VerifierConfig, source: impl TrustSource) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = config.leeway.min(MAX_LEEWAY).as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[&config.audience]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss", "sub"]);
        Self(Arc::new(Inner {
            leeway_secs: i64::try_from(validation.leeway).unwrap_or(0),
            validation,
            checked: Mutex::new(HashMap::new()),
            refresh_interval: config.refresh_interval,
            max_staleness: config.max_staleness,
            trust: ArcSwap::from_pointee(Trust::default()),
            source: Box::new(source),
            fetching: tokio::sync::Mutex::new(()),
            last_on_demand: tokio::sync::Mutex::new(None),
        }))
    }

    /// Fetches once, then keeps refreshing every `refresh_interval` until `shutdown`. A failed
    /// first fetch is logged, not fatal: calls are refused until a fetch succeeds.
    pub async fn start(
        config: VerifierConfig,
        source: impl TrustSource,
        shutdown: CancellationToken,
    ) -> Self {
        let verifier = Self::new(config, source);
        if let Err(error) = verifier.refresh().await {
            tracing::warn!(error = %error, "no signing keys yet, retrying in the background");
        }
        verifier.spawn_refresh(shutdown);
        verifier
    }

    /// Refreshes in the background every `refresh_interval` until `shutdown` is cancelled.
    pub fn spawn_refresh(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let verifier = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(verifier.0.refresh_interval) => {}
                }
                if let Err(error) = verifier.refresh().await {
                    tracing::warn!(error = %ecrm_error_chain(&error), "cannot refresh signing keys and revocations");
                }
            }
        })
    }

    /// Fetches the keys and revocations now.
    pub async fn refresh(&self) -> Result<(), SourceError> {
        let _fetching = self.0.fetching.lock().await;
        let snapshot = tokio::time::timeout(FETCH_TIMEOUT, self.0.source.fetch())
            .await
            .map_err(|elapsed| SourceError(Box::new(elapsed)))??;
        self.0.trust.store(Arc::new(Trust::from(snapshot)));
        Ok(())
    }

    /// Verifies `token` against what is in memory: signature, algorithm, `kid`, `iss`, `aud`,
    /// `exp`, `nbf`, revocation and disabled principals. A token seen before skips the
    /// signature and claim parsing, never the checks that can change: expiry, revocation,
    /// disabled principal, key still published, keys fresh enough.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let trust = self.0.trust.load();
        if trust
            .fetched_at
            .is_some_and(|at| at.elapsed() > self.0.max_staleness)
        {
            return Err(AuthError::Stale);
        }
        if let Some(principal) = self.recheck(token, &trust)? {
            return Ok(principal);
        }
        let (principal, kid) = self.check(token, &trust)?;
        let mut checked = self
            .0
            .checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if checked.len() >= CACHE_CAPACITY {
            checked.clear();
        }
        checked.insert(
            token.to_owned(),
            Checked {
                principal: principal.clone(),
                kid,
            },
        );
        Ok(principal)
    }

    /// The principal of a token checked before, after the checks that can change since.
    fn recheck(&self, token: &str, trust: &Trust) -> Result<Option<Principal>, AuthError> {
        let checked = self
            .0
            .checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = checked.get(token) else {
            return Ok(None);
        };
        if !trust.keys.contains_key(&entry.kid) {
            // Its key is no longer published: the full check will say so.
            return Ok(None);
        }
        let principal = &entry.principal;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if now > principal.expires_at + self.0.leeway_secs {
            return Err(AuthError::Expired);
        }
        if trust.revoked.contains(&principal.token_id) {
            return Err(AuthError::Revoked);
        }
        if trust.disabled.contains(&principal.subject) {
            return Err(AuthError::Disabled);
        }
        Ok(Some(principal.clone()))
    }

    /// The full check of a token not seen before; returns its principal and its key's kid.
    fn check(&self, token: &str, trust: &Trust) -> Result<(Principal, String), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        // A token must never choose the key it is checked with.
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(AuthError::EmbeddedKey);
        }
        let kid = header.kid.ok_or(AuthError::Malformed)?;
        let key = trust.keys.get(&kid).ok_or(AuthError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.0.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed,
                _ => AuthError::Malformed,
            })?
            .claims;
        if trust.revoked.contains(&claims.jti) {
            return Err(AuthError::Revoked);
        }
        if trust.disabled.contains(&claims.sub) {
            return Err(AuthError::Disabled);
        }
        let partner_id = match (claims.kind, claims.partner_id) {
            (PrincipalKind::Partner, Some(partner)) if !partner.is_empty() => Some(partner),
            (PrincipalKind::Partner, _) | (_, Some(_)) => return Err(AuthError::Malformed),
            (_, None) => None,
        };
        let principal = Principal {
            subject: claims.sub,
            kind: claims.kind,
            partner_id,
            scopes: Scopes::from_claim(&claims.scope),
            token_id: claims.jti,
            expires_at: claims.exp,
        };
        Ok((principal, kid))
    }

    /// [`Verifier::verify`], refreshing first when the token's key is unknown (a key published
    /// since the last refresh), at most once per second whatever the callers send.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        match self.verify(token) {
            Err(AuthError::UnknownKey) => {
                let mut last = self.0.last_on_demand.lock().await;
                if last.is_some_and(|at| at.elapsed() < MIN_REFRESH_GAP) {
                    return Err(AuthError::UnknownKey);
                }
                *last = Some(Instant::now());
                if let Err(error) = self.refresh().await {
                    tracing::warn!(error = %ecrm_error_chain(&error), "cannot refresh signing keys");
                }
                drop(last);
                self.verify(token)
            }
            other => other,
        }
    }
}

/// An error with its sources, for logs.
fn ecrm_error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}
