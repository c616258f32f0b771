//! Issuing tokens for credentials, throttling repeated attempts, revoking tokens, and
//! publishing what verifiers need (keys, revocations, disabled principals).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ecrm_auth::{
    Claims, Jwk, JwkSet, MAX_LEEWAY, MAX_TOKEN_LIFETIME, Principal, PrincipalKind, Scope, Scopes,
};
use ecrm_crypto::{BlindIndexKey, Secret};
use ecrm_platform::Db;
use uuid::Uuid;

use super::store;
use crate::accounts::domain::{Accounts, MAX_ACTIVE_SECRETS};
use crate::credentials::HashPool;
use crate::error::IdentityError;
use crate::keys::domain::{Keys, SigningKey};
use crate::operators::domain::Operators;

/// The services a token can be for: its `aud`.
pub const AUDIENCES: [&str; 5] = [
    "identity",
    "profiles",
    "consent",
    "segmentation",
    "outbound",
];

/// Attempts allowed before logins of a name from a source are blocked.
pub const FREE_ATTEMPTS: i32 = 5;
const FIRST_BLOCK: Duration = Duration::from_secs(5);
const LONGEST_BLOCK: Duration = Duration::from_secs(15 * 60);

/// How long logins are blocked after `attempts` unsuccessful attempts: from the fifth on,
/// 5 s, doubling each time, at most 15 minutes.
pub fn block_after(attempts: i32) -> Option<Duration> {
    let beyond = attempts.checked_sub(FREE_ATTEMPTS)?;
    let beyond = u32::try_from(beyond).ok()?;
    let factor = 2_u32.checked_pow(beyond).unwrap_or(u32::MAX);
    Some(FIRST_BLOCK.saturating_mul(factor).min(LONGEST_BLOCK))
}

/// What proves who is asking.
#[derive(Debug, Clone)]
pub enum Grant {
    ClientCredentials {
        client_id: String,
        secret: Secret<String>,
    },
    OperatorPassword {
        username: String,
        password: Secret<String>,
    },
}

/// A checked request for a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub grant: Grant,
    /// What the token is asked to carry: never empty.
    pub scopes: Scopes,
    pub audience: String,
    /// The address the request came from, when known: attempts are counted per name and source,
    /// so one source cannot block a principal for every other.
    pub source: Option<IpAddr>,
}

impl TokenRequest {
    pub fn new(
        grant: Grant,
        scopes: &[String],
        audience: &str,
        source: Option<IpAddr>,
    ) -> Result<Self, IdentityError> {
        if !AUDIENCES.contains(&audience) {
            return Err(IdentityError::invalid(
                "audience",
                format!("one of {}", AUDIENCES.join(", ")),
            ));
        }
        if scopes.is_empty() {
            return Err(IdentityError::invalid(
                "scopes",
                "ask for at least one scope",
            ));
        }
        let scopes = Scopes::parse(scopes.iter().map(String::as_str))
            .map_err(|error| IdentityError::invalid("scopes", error.to_string()))?;
        Ok(Self {
            grant,
            scopes,
            audience: audience.to_owned(),
            source,
        })
    }
}

#[derive(Debug)]
pub struct IssuedToken {
    pub token: Secret<String>,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
    pub scopes: Scopes,
}

/// Who is logging in, as stored.
struct LoginSubject {
    id: Uuid,
    kind: PrincipalKind,
    partner_id: Option<String>,
    granted: Scopes,
    disabled: bool,
    hashes: Vec<Secret<String>>,
}

/// How a counted attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// No credential was judged (no hashing slot, a database error): not a failure.
    Undecided,
}

/// What verifiers must know besides the keys.
#[derive(Debug, Default)]
pub struct Revocations {
    pub revoked_tokens: Vec<(String, DateTime<Utc>)>,
    pub disabled_subjects: Vec<String>,
    pub as_of: Option<DateTime<Utc>>,
}

pub struct Tokens {
    db: Db,
    keys: Arc<Keys>,
    hashing: HashPool,
    /// Keys the attempt counters, so neither names nor addresses are stored.
    attempts: BlindIndexKey,
    issuer: String,
    lifetime: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(
        db: Db,
        keys: Arc<Keys>,
        hashing: HashPool,
        attempts: BlindIndexKey,
        issuer: String,
        lifetime: Duration,
    ) -> Self {
        Self {
            db,
            keys,
            hashing,
            attempts,
            issuer,
            lifetime,
        }
    }

    /// A token for valid credentials, carrying the scopes asked for, every one of which must
    /// have been granted. At most [`FREE_ATTEMPTS`] attempts for one name from one source are
    /// checked before a block starts, concurrent ones included; failed ones then block that
    /// name from that source for a while. A wrong secret, an unknown name and a disabled
    /// principal all get the same answer.
    pub async fn issue(&self, request: TokenRequest) -> Result<IssuedToken, IdentityError> {
        let (name_key, attempt_key) = self.attempt_keys(&request.grant, request.source);
        self.start_attempt(attempt_key.clone(), name_key).await?;
        let checked = self.check(&request).await;
        let outcome = match &checked {
            Ok(Some(_)) => Outcome::Succeeded,
            Ok(None) => Outcome::Failed,
            // Busy, or the database: no guess was judged, so none is counted.
            Err(_) => Outcome::Undecided,
        };
        self.finish_attempt(attempt_key, outcome).await?;
        let Some(subject) = checked? else {
            return Err(IdentityError::InvalidCredentials);
        };
        let refused = request.scopes.without(subject.granted);
        if !refused.is_empty() {
            return Err(IdentityError::PermissionDenied(format!(
                "scopes not granted: {}",
                refused.to_claim()
            )));
        }
        self.sign(&subject, request.scopes, &request.audience).await
    }

    /// The subject whose credentials these are, if they are valid and it is enabled.
    async fn check(&self, request: &TokenRequest) -> Result<Option<LoginSubject>, IdentityError> {
        let (subject, secret, count) = self.find_subject(&request.grant).await?;
        let hashes = subject
            .as_ref()
            .map(|s| s.hashes.clone())
            .unwrap_or_default();
        let matched = self.hashing.matches_any(&secret, hashes, count).await?;
        Ok(subject.filter(|subject| matched && !subject.disabled))
    }

    /// Admits the attempt, or refuses it: while blocked, or when too many are being checked
    /// already. The counters' row is locked meanwhile, so concurrent attempts are admitted one
    /// after another.
    async fn start_attempt(
        &self,
        attempt_key: String,
        name_key: String,
    ) -> Result<(), IdentityError> {
        self.db
            .run(move |conn| {
                let now = Utc::now();
                let counters = store::find_for_update(conn, &attempt_key, &name_key, now)?;
                if let Some(until) = counters.blocked_until
                    && until > now
                {
                    let retry_after = (until - now).to_std().unwrap_or(FIRST_BLOCK);
                    return Err(IdentityError::Throttled { retry_after });
                }
                // Attempts left pending by a process that died are forgotten after a while.
                let pending = if now - counters.last_attempt_at > chrono::Duration::minutes(1) {
                    0
                } else {
                    counters.pending
                };
                // Failures so far and attempts in flight share the free attempts; once they are
                // used up, one attempt at a time, each failure blocking longer.
                let in_flight_allowed = (FREE_ATTEMPTS - counters.failures).max(1);
                if pending >= in_flight_allowed {
                    return Err(IdentityError::Throttled {
                        retry_after: Duration::from_secs(1),
                    });
                }
                store::update_start(conn, &attempt_key, pending + 1, now)?;
                Ok(())
            })
            .await
    }

    async fn finish_attempt(
        &self,
        attempt_key: String,
        outcome: Outcome,
    ) -> Result<(), IdentityError> {
        self.db
            .run(move |conn| {
                // The counters may be gone: an operator's password reset clears them.
                let Some(failures) = store::update_finish(conn, &attempt_key, outcome)? else {
                    return Ok(());
                };
                if outcome == Outcome::Failed
                    && let Some(block) = block_after(failures)
                {
                    let until = Utc::now()
                        + chrono::Duration::from_std(block).unwrap_or(chrono::Duration::MAX);
                    store::update_blocked_until(conn, &attempt_key, until)?;
                    tracing::warn!(
                        failures,
                        block_secs = block.as_secs(),
                        "logins of one name from one source blocked"
                    );
                }
                Ok(())
            })
            .await
    }

    /// (name key, attempt key): blind indexes of the login name, and of the name with the source.
    fn attempt_keys(&self, grant: &Grant, source: Option<IpAddr>) -> (String, String) {
        let name = match grant {
            Grant::ClientCredentials { client_id, .. } => format!("client:{client_id}"),
            Grant::OperatorPassword { username, .. } => format!("operator:{username}"),
        };
        let source = source.map_or_else(|| "unknown".to_owned(), |ip| source_group(ip).to_string());
        (
            self.attempts.index(name.as_bytes()),
            self.attempts.index(format!("{name}@{source}").as_bytes()),
        )
    }

    /// The subject the grant names (if any), the secret offered, and how many hashes to check
    /// it against whoever it is, so timing tells nothing.
    async fn find_subject(
        &self,
        grant: &Grant,
    ) -> Result<(Option<LoginSubject>, Secret<String>, usize), IdentityError> {
        match grant.clone() {
            Grant::ClientCredentials { client_id, secret } => {
                let found = self
                    .db
                    .run(move |conn| {
                        let found = Accounts::find_login(conn, &client_id)?;
                        Ok::<_, IdentityError>(found.map(|account| LoginSubject {
                            id: account.id,
                            kind: account.kind,
                            partner_id: account.partner_id,
                            granted: account.scopes,
                            disabled: account.disabled,
                            hashes: account.secret_hashes,
                        }))
                    })
                    .await?;
                Ok((found, secret, MAX_ACTIVE_SECRETS))
            }
            Grant::OperatorPassword { username, password } => {
                let found = self
                    .db
                    .run(move |conn| {
                        let found = Operators::find_login(conn, &username)?;
                        Ok::<_, IdentityError>(found.map(|operator| LoginSubject {
                            id: operator.id,
                            kind: PrincipalKind::Operator,
                            partner_id: None,
                            granted: operator.scopes,
                            disabled: operator.disabled,
                            hashes: vec![operator.password_hash],
                        }))
                    })
                    .await?;
                Ok((found, password, 1))
            }
        }
    }

    async fn sign(
        &self,
        subject: &LoginSubject,
        scopes: Scopes,
        audience: &str,
    ) -> Result<IssuedToken, IdentityError> {
        let signer = self.keys.active_signer().await?;
        let now = Utc::now();
        let lifetime = chrono::Duration::from_std(self.lifetime).map_err(|_| {
            IdentityError::FailedPrecondition("token lifetime out of range".to_owned())
        })?;
        let expires_at = now + lifetime;
        let jti = Uuid::new_v4().to_string();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.id.to_string(),
            aud: audience.to_owned(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            jti: jti.clone(),
            scope: scopes.to_claim(),
            kind: subject.kind,
            partner_id: subject.partner_id.clone(),
        };
        let token = Secret::new(signer.sign(&claims)?);
        tracing::info!(principal.id = %subject.id, kind = %subject.kind, audience, kid = signer.kid(), "token issued");
        Ok(IssuedToken {
            token,
            jti,
            expires_at,
            scopes,
        })
    }

    /// Revokes `jti`: the caller's own token, or any with identity.admin. The revocation is kept
    /// as long as any token can live, whatever lifetime is configured now. Returns false when it
    /// was revoked already.
    pub async fn revoke(&self, caller: &Principal, jti: String) -> Result<bool, IdentityError> {
        if jti.is_empty() || jti.len() > 128 {
            return Err(IdentityError::invalid("jti", "1 to 128 characters"));
        }
        if jti != caller.token_id && !caller.scopes.contains(Scope::IdentityAdmin) {
            return Err(IdentityError::PermissionDenied(
                "only your own token, or any with identity.admin".to_owned(),
            ));
        }
        let keep = chrono::Duration::from_std(MAX_TOKEN_LIFETIME + MAX_LEEWAY).map_err(|_| {
            IdentityError::FailedPrecondition("token lifetime out of range".to_owned())
        })?;
        let now = Utc::now();
        let newly = self
            .db
            .run(move |conn| {
                store::delete_revoked_expired(conn, now)?;
                Ok::<_, IdentityError>(store::insert_revoked(conn, &jti, now + keep)?)
            })
            .await?;
        tracing::info!(principal.id = %caller.subject, newly, "token revoked");
        Ok(newly)
    }

    /// Forgets what no longer matters: attempt counters idle for a day, revocations of tokens
    /// that have expired.
    pub async fn sweep(&self) -> Result<(), IdentityError> {
        self.db
            .run(|conn| {
                let now = Utc::now();
                store::delete_idle_attempts(conn, now, chrono::Duration::days(1))?;
                store::delete_revoked_expired(conn, now)?;
                Ok::<_, IdentityError>(())
            })
            .await
    }

    /// Revoked tokens still live, and every disabled principal.
    pub async fn revocations(&self) -> Result<Revocations, IdentityError> {
        self.db
            .run(|conn| {
                let now = Utc::now();
                let revoked_tokens = store::list_revoked_live(conn, now)?;
                let mut disabled_subjects: Vec<String> =
                    crate::accounts::store::list_disabled_ids(conn)?
                        .into_iter()
                        .map(|id| id.to_string())
                        .collect();
                disabled_subjects.extend(
                    crate::operators::store::list_disabled_ids(conn)?
                        .into_iter()
                        .map(|id| id.to_string()),
                );
                Ok(Revocations {
                    revoked_tokens,
                    disabled_subjects,
                    as_of: Some(now),
                })
            })
            .await
    }

    /// The published keys as a JWK Set.
    pub async fn jwks(&self) -> Result<(JwkSet, Vec<SigningKey>), IdentityError> {
        let keys = self.keys.published().await?;
        let set = JwkSet {
            keys: keys
                .iter()
                .map(|k| Jwk::ed25519(&k.kid, &k.public_key))
                .collect(),
        };
        Ok((set, keys))
    }
}

/// The unit attempts are counted per: the address itself for IPv4, the /64 network for IPv6,
/// where one host may hold a whole /64.
fn source_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_from_one_ipv6_network_count_together() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_group(a), source_group(b));
        assert_ne!(source_group(a), source_group(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_group(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(source_group(v4), v4);
    }

    #[test]
    fn logins_are_blocked_from_the_fifth_attempt_doubling_up_to_fifteen_minutes() {
        assert_eq!(block_after(1), None);
        assert_eq!(block_after(4), None);
        assert_eq!(block_after(5), Some(Duration::from_secs(5)));
        assert_eq!(block_after(6), Some(Duration::from_secs(10)));
        assert_eq!(block_after(10), Some(Duration::from_secs(160)));
        assert_eq!(block_after(40), Some(LONGEST_BLOCK));
        assert_eq!(block_after(i32::MAX), Some(LONGEST_BLOCK));
    }

    #[test]
    fn requests_name_a_known_audience_and_at_least_one_known_scope() {
        let grant = Grant::ClientCredentials {
            client_id: "c".to_owned(),
            secret: Secret::new("s".to_owned()),
        };
        let read = ["profiles.read".to_owned()];
        assert!(TokenRequest::new(grant.clone(), &read, "profiles", None).is_ok());
        assert!(matches!(
            TokenRequest::new(grant.clone(), &read, "billing", None),
            Err(IdentityError::InvalidArgument {
                field: "audience",
                ..
            })
        ));
        assert!(matches!(
            TokenRequest::new(grant.clone(), &[], "profiles", None),
            Err(IdentityError::InvalidArgument {
                field: "scopes",
                ..
            })
        ));
        assert!(matches!(
            TokenRequest::new(grant, &["profiles.delete".to_owned()], "profiles", None),
            Err(IdentityError::InvalidArgument {
                field: "scopes",
                ..
            })
        ));
    }
}
