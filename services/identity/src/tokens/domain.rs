//! Issuing tokens for credentials or a session's refresh token, revoking tokens, and
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

use super::attempts::{LoginAttempts, Outcome};
use super::store;
use crate::accounts::domain::{Accounts, MAX_ACTIVE_SECRETS};
use crate::credentials::HashPool;
use crate::error::IdentityError;
use crate::keys::domain::{Keys, SigningKey};
use crate::operators::domain::Operators;
use crate::sessions::domain::{RefreshToken, Sessions, StartedSession};

/// The services a token can be for: its `aud`.
pub const AUDIENCES: [&str; 5] = [
    "identity",
    "profiles",
    "consent",
    "segmentation",
    "outbound",
];

/// Credentials a principal logs in with.
#[derive(Debug, Clone)]
pub enum Credentials {
    ClientCredentials {
        client_id: String,
        secret: Secret<String>,
    },
    OperatorPassword {
        username: String,
        password: Secret<String>,
    },
}

/// What proves who is asking.
#[derive(Debug, Clone)]
pub enum Grant {
    Login(Credentials),
    /// The refresh token of a session started at an earlier login.
    Refresh(RefreshToken),
}

/// A checked request for a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub grant: Grant,
    /// What the token is asked to carry; empty only when a session starts with no token.
    pub scopes: Scopes,
    pub audience: String,
    /// Whether a session starts too; only with a login.
    pub start_session: bool,
    /// The address the request came from, when known: attempts are counted per name and source,
    /// so one source cannot block a principal for every other.
    pub source: Option<IpAddr>,
}

impl TokenRequest {
    pub fn new(
        grant: Grant,
        scopes: &[String],
        audience: &str,
        start_session: bool,
        source: Option<IpAddr>,
    ) -> Result<Self, IdentityError> {
        if !AUDIENCES.contains(&audience) {
            return Err(IdentityError::invalid(
                "audience",
                format!("one of {}", AUDIENCES.join(", ")),
            ));
        }
        // A login that only starts a session (`ecrm login`) needs no token yet, and cannot
        // know which scopes its principal holds.
        if scopes.is_empty() && !start_session {
            return Err(IdentityError::invalid(
                "scopes",
                "ask for at least one scope",
            ));
        }
        let scopes = Scopes::parse(scopes.iter().map(String::as_str))
            .map_err(|error| IdentityError::invalid("scopes", error.to_string()))?;
        // One login, one session: a refresh token starting another would outlive its own.
        if start_session && matches!(grant, Grant::Refresh(_)) {
            return Err(IdentityError::invalid(
                "start_session",
                "only with client_credentials or operator_password, not with refresh_token",
            ));
        }
        Ok(Self {
            grant,
            scopes,
            audience: audience.to_owned(),
            start_session,
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

/// What IssueToken gives: a token unless no scope was asked for, and a session when asked.
#[derive(Debug)]
pub struct Issued {
    pub token: Option<IssuedToken>,
    pub session: Option<StartedSession>,
}

/// Whom a token is issued to, as stored now.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: Uuid,
    pub kind: PrincipalKind,
    pub partner_id: Option<String>,
    /// The scopes it holds.
    pub granted: Scopes,
    /// When it was read from the store.
    pub read_at: DateTime<Utc>,
}

/// Who is logging in, as stored.
struct LoginSubject {
    subject: Subject,
    disabled: bool,
    hashes: Vec<Secret<String>>,
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
    sessions: Arc<Sessions>,
    hashing: HashPool,
    attempts: LoginAttempts,
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
        sessions: Arc<Sessions>,
        hashing: HashPool,
        attempts: BlindIndexKey,
        issuer: String,
        lifetime: Duration,
    ) -> Self {
        Self {
            attempts: LoginAttempts::new(db.clone(), attempts),
            db,
            keys,
            sessions,
            hashing,
            issuer,
            lifetime,
        }
    }

    /// A token carrying the scopes asked for, every one of which the principal must hold, and
    /// with a login a session when asked. A login's credentials are checked by
    /// [`Tokens::log_in`]; a refresh token is checked by [`Sessions::subject`], against the
    /// principal as it is now.
    pub async fn issue(&self, request: TokenRequest) -> Result<Issued, IdentityError> {
        let subject = match &request.grant {
            Grant::Login(credentials) => self.log_in(credentials, request.source).await?,
            Grant::Refresh(refresh_token) => self.sessions.subject(refresh_token).await?,
        };
        let refused = request.scopes.without(subject.granted);
        if !refused.is_empty() {
            return Err(IdentityError::PermissionDenied(format!(
                "scopes not granted: {}",
                refused.to_claim()
            )));
        }
        let token = if request.scopes.is_empty() {
            None
        } else {
            Some(
                self.sign(&subject, request.scopes, &request.audience)
                    .await?,
            )
        };
        let session = if request.start_session {
            Some(self.sessions.start(&subject).await?)
        } else {
            None
        };
        Ok(Issued { token, session })
    }

    /// The principal whose credentials these are. At most
    /// [`FREE_ATTEMPTS`](super::attempts::FREE_ATTEMPTS) attempts for one name from one source
    /// are checked before a block starts, concurrent ones included; failed ones then block that
    /// name from that source for a while. A wrong secret, an unknown name and a disabled
    /// principal all get the same answer.
    async fn log_in(
        &self,
        credentials: &Credentials,
        source: Option<IpAddr>,
    ) -> Result<Subject, IdentityError> {
        let keys = self.attempts.keys(credentials, source);
        self.attempts.start(&keys).await?;
        let checked = self.check(credentials).await;
        let outcome = match &checked {
            Ok(Some(_)) => Outcome::Succeeded,
            Ok(None) => Outcome::Failed,
            // Busy, or the database: no guess was judged, so none is counted.
            Err(_) => Outcome::Undecided,
        };
        self.attempts.finish(&keys, outcome).await?;
        checked?.ok_or(IdentityError::InvalidCredentials)
    }

    /// The subject whose credentials these are, if they are valid and it is enabled.
    async fn check(&self, credentials: &Credentials) -> Result<Option<Subject>, IdentityError> {
        let (found, secret, count) = self.find_subject(credentials).await?;
        let hashes = found.as_ref().map(|s| s.hashes.clone()).unwrap_or_default();
        let matched = self.hashing.matches_any(&secret, hashes, count).await?;
        Ok(found
            .filter(|found| matched && !found.disabled)
            .map(|found| found.subject))
    }

    /// The subject the credentials name (if any), the secret offered, and how many hashes to
    /// check it against whoever it is, so timing tells nothing.
    async fn find_subject(
        &self,
        credentials: &Credentials,
    ) -> Result<(Option<LoginSubject>, Secret<String>, usize), IdentityError> {
        match credentials.clone() {
            Credentials::ClientCredentials { client_id, secret } => {
                let found = self
                    .db
                    .run(move |conn| {
                        let read_at = Utc::now();
                        let found = Accounts::find_login(conn, &client_id)?;
                        Ok::<_, IdentityError>(found.map(|account| LoginSubject {
                            subject: Subject {
                                id: account.id,
                                kind: account.kind,
                                partner_id: account.partner_id,
                                granted: account.scopes,
                                read_at,
                            },
                            disabled: account.disabled,
                            hashes: account.secret_hashes,
                        }))
                    })
                    .await?;
                Ok((found, secret, MAX_ACTIVE_SECRETS))
            }
            Credentials::OperatorPassword { username, password } => {
                let found = self
                    .db
                    .run(move |conn| {
                        let read_at = Utc::now();
                        let found = Operators::find_login(conn, &username)?;
                        Ok::<_, IdentityError>(found.map(|operator| LoginSubject {
                            subject: Subject {
                                id: operator.id,
                                kind: PrincipalKind::Operator,
                                partner_id: None,
                                granted: operator.scopes,
                                read_at,
                            },
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
        subject: &Subject,
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
        // A token id is printable: a NUL would reach the database as text it refuses.
        if jti.is_empty() || jti.len() > 128 || jti.chars().any(char::is_control) {
            return Err(IdentityError::invalid(
                "jti",
                "1 to 128 characters, none of them control characters",
            ));
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
    /// that have expired, sessions ended or expired a day ago.
    pub async fn sweep(&self) -> Result<(), IdentityError> {
        self.db
            .run(|conn| {
                let now = Utc::now();
                let day = chrono::Duration::days(1);
                store::delete_idle_attempts(conn, now, day)?;
                store::delete_revoked_expired(conn, now)?;
                crate::sessions::store::delete_stale(conn, now - day)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Grant {
        Grant::Login(Credentials::ClientCredentials {
            client_id: "c".to_owned(),
            secret: Secret::new("s".to_owned()),
        })
    }

    #[test]
    fn requests_name_a_known_audience_and_at_least_one_known_scope() {
        let read = ["profiles.read".to_owned()];
        assert!(TokenRequest::new(login(), &read, "profiles", false, None).is_ok());
        assert!(matches!(
            TokenRequest::new(login(), &read, "billing", false, None),
            Err(IdentityError::InvalidArgument {
                field: "audience",
                ..
            })
        ));
        assert!(matches!(
            TokenRequest::new(login(), &[], "profiles", false, None),
            Err(IdentityError::InvalidArgument {
                field: "scopes",
                ..
            })
        ));
        assert!(matches!(
            TokenRequest::new(
                login(),
                &["profiles.delete".to_owned()],
                "profiles",
                false,
                None
            ),
            Err(IdentityError::InvalidArgument {
                field: "scopes",
                ..
            })
        ));
    }

    #[test]
    fn a_session_starts_only_with_a_login() {
        let read = ["profiles.read".to_owned()];
        assert!(TokenRequest::new(login(), &read, "profiles", true, None).is_ok());
        let refresh =
            Grant::Refresh(RefreshToken::parse("refresh_token", "ecrm_rt_x".to_owned()).unwrap());
        assert!(TokenRequest::new(refresh.clone(), &read, "profiles", false, None).is_ok());
        assert!(matches!(
            TokenRequest::new(refresh, &read, "profiles", true, None),
            Err(IdentityError::InvalidArgument {
                field: "start_session",
                ..
            })
        ));
    }
}
