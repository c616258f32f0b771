//! Issuing tokens for credentials, throttling repeated failures, revoking tokens, and
//! publishing what verifiers need (keys, revocations, disabled principals).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ecrm_auth::{Claims, Jwk, JwkSet, Principal, PrincipalKind, Scope, Scopes};
use ecrm_crypto::Secret;
use ecrm_platform::Db;
use uuid::Uuid;

use super::store;
use crate::accounts::domain::Accounts;
use crate::credentials::Hasher;
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

/// Failed logins allowed before a principal's logins are blocked.
pub const FREE_ATTEMPTS: i32 = 5;
const FIRST_BLOCK: Duration = Duration::from_secs(5);
const LONGEST_BLOCK: Duration = Duration::from_secs(15 * 60);

/// How long logins are blocked after `failures` consecutive failures: from the fifth on,
/// 5 s, doubling each time, at most 15 minutes.
pub fn block_after(failures: i32) -> Option<Duration> {
    let beyond = failures.checked_sub(FREE_ATTEMPTS)?;
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
    /// `None`: every scope granted.
    pub scopes: Option<Scopes>,
    pub audience: String,
}

impl TokenRequest {
    pub fn new(grant: Grant, scopes: &[String], audience: &str) -> Result<Self, IdentityError> {
        if !AUDIENCES.contains(&audience) {
            return Err(IdentityError::invalid(
                "audience",
                format!("one of {}", AUDIENCES.join(", ")),
            ));
        }
        let scopes = if scopes.is_empty() {
            None
        } else {
            Some(
                Scopes::parse(scopes.iter().map(String::as_str))
                    .map_err(|error| IdentityError::invalid("scopes", error.to_string()))?,
            )
        };
        Ok(Self {
            grant,
            scopes,
            audience: audience.to_owned(),
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
    hashes: Vec<String>,
    blocked_until: Option<DateTime<Utc>>,
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
    hasher: Arc<Hasher>,
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
        hasher: Arc<Hasher>,
        issuer: String,
        lifetime: Duration,
    ) -> Self {
        Self {
            db,
            keys,
            hasher,
            issuer,
            lifetime,
        }
    }

    /// A token for valid credentials, carrying the scopes asked for (all granted ones when none
    /// are asked for). Wrong credentials count towards the principal's login block.
    pub async fn issue(&self, request: TokenRequest) -> Result<IssuedToken, IdentityError> {
        let (subject, secret) = self.find_subject(&request.grant).await?;
        let now = Utc::now();
        if let Some(subject) = &subject
            && let Some(until) = subject.blocked_until
            && until > now
        {
            let retry_after = (until - now).to_std().unwrap_or(FIRST_BLOCK);
            return Err(IdentityError::Throttled { retry_after });
        }
        let hashes = subject
            .as_ref()
            .map(|s| s.hashes.clone())
            .unwrap_or_default();
        let hasher = self.hasher.clone();
        let matched =
            tokio::task::spawn_blocking(move || hasher.matches_any(secret.expose(), &hashes))
                .await?;
        let Some(subject) = subject else {
            return Err(IdentityError::InvalidCredentials);
        };
        if !matched {
            self.record_failure(subject.id).await?;
            return Err(IdentityError::InvalidCredentials);
        }
        let id = subject.id;
        self.db
            .run(move |conn| Ok::<_, IdentityError>(store::delete_failures(conn, id)?))
            .await?;
        if subject.disabled {
            return Err(IdentityError::PermissionDenied(
                "principal disabled".to_owned(),
            ));
        }
        let scopes = request.scopes.unwrap_or(subject.granted);
        let refused = scopes.without(subject.granted);
        if !refused.is_empty() {
            return Err(IdentityError::PermissionDenied(format!(
                "scopes not granted: {}",
                refused.to_claim()
            )));
        }
        self.sign(&subject, scopes, &request.audience).await
    }

    async fn find_subject(
        &self,
        grant: &Grant,
    ) -> Result<(Option<LoginSubject>, Secret<String>), IdentityError> {
        let (subject, secret) = match grant.clone() {
            Grant::ClientCredentials { client_id, secret } => {
                let found = self
                    .db
                    .run(move |conn| {
                        let Some(account) = Accounts::find_login(conn, &client_id)? else {
                            return Ok::<_, IdentityError>(None);
                        };
                        let blocked_until = store::find_blocked_until(conn, account.id)?;
                        Ok(Some(LoginSubject {
                            id: account.id,
                            kind: account.kind,
                            partner_id: account.partner_id,
                            granted: account.scopes,
                            disabled: account.disabled,
                            hashes: account.secret_hashes,
                            blocked_until,
                        }))
                    })
                    .await?;
                (found, secret)
            }
            Grant::OperatorPassword { username, password } => {
                let found = self
                    .db
                    .run(move |conn| {
                        let Some(operator) = Operators::find_login(conn, &username)? else {
                            return Ok::<_, IdentityError>(None);
                        };
                        let blocked_until = store::find_blocked_until(conn, operator.id)?;
                        Ok(Some(LoginSubject {
                            id: operator.id,
                            kind: PrincipalKind::Operator,
                            partner_id: None,
                            granted: operator.scopes,
                            disabled: operator.disabled,
                            hashes: vec![operator.password_hash],
                            blocked_until,
                        }))
                    })
                    .await?;
                (found, password)
            }
        };
        Ok((subject, secret))
    }

    async fn record_failure(&self, id: Uuid) -> Result<(), IdentityError> {
        self.db
            .run(move |conn| {
                let now = Utc::now();
                let failures = store::update_record_failure(conn, id, now)?;
                if let Some(block) = block_after(failures) {
                    let until = now + chrono::Duration::from_std(block).unwrap_or(chrono::Duration::MAX);
                    store::update_blocked_until(conn, id, until)?;
                    tracing::warn!(principal.id = %id, failures, block_secs = block.as_secs(), "logins blocked after repeated failures");
                }
                Ok(())
            })
            .await
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

    /// Revokes `jti`: the caller's own token, or any with identity.admin. Returns false when it
    /// was revoked already.
    pub async fn revoke(
        &self,
        caller: &Principal,
        jti: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool, IdentityError> {
        if jti.is_empty() || jti.len() > 128 {
            return Err(IdentityError::invalid("jti", "1 to 128 characters"));
        }
        if jti != caller.token_id && !caller.scopes.contains(Scope::IdentityAdmin) {
            return Err(IdentityError::PermissionDenied(
                "only your own token, or any with identity.admin".to_owned(),
            ));
        }
        let longest =
            chrono::Duration::from_std(self.lifetime + ecrm_auth::MAX_LEEWAY).map_err(|_| {
                IdentityError::FailedPrecondition("token lifetime out of range".to_owned())
            })?;
        let now = Utc::now();
        // Kept until the token expires: as the caller says, at most as long as any token lives.
        let expires_at = expires_at.map_or(now + longest, |at| at.min(now + longest));
        let newly = self
            .db
            .run(move |conn| {
                store::delete_revoked_expired(conn, now)?;
                Ok::<_, IdentityError>(store::insert_revoked(conn, &jti, expires_at)?)
            })
            .await?;
        tracing::info!(principal.id = %caller.subject, newly, "token revoked");
        Ok(newly)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_blocked_from_the_fifth_failure_doubling_up_to_fifteen_minutes() {
        assert_eq!(block_after(1), None);
        assert_eq!(block_after(4), None);
        assert_eq!(block_after(5), Some(Duration::from_secs(5)));
        assert_eq!(block_after(6), Some(Duration::from_secs(10)));
        assert_eq!(block_after(10), Some(Duration::from_secs(160)));
        assert_eq!(block_after(40), Some(LONGEST_BLOCK));
        assert_eq!(block_after(i32::MAX), Some(LONGEST_BLOCK));
    }

    #[test]
    fn requests_name_a_known_audience_and_known_scopes() {
        let grant = Grant::ClientCredentials {
            client_id: "c".to_owned(),
            secret: Secret::new("s".to_owned()),
        };
        assert!(TokenRequest::new(grant.clone(), &[], "profiles").is_ok());
        assert!(matches!(
            TokenRequest::new(grant.clone(), &[], "billing"),
            Err(IdentityError::InvalidArgument {
                field: "audience",
                ..
            })
        ));
        assert!(matches!(
            TokenRequest::new(grant, &["profiles.delete".to_owned()], "profiles"),
            Err(IdentityError::InvalidArgument {
                field: "scopes",
                ..
            })
        ));
    }
}
