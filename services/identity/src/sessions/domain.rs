//! Sessions: started at a login, they let the principal's refresh token issue tokens until the
//! session expires or ends, checking the principal as it is at each refresh.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ecrm_auth::PrincipalKind;
use ecrm_crypto::Secret;
use ecrm_platform::{Db, DbError};
use ring::digest::{SHA256, digest};
use uuid::Uuid;

use super::store::{self, NewSession, SessionRow};
use crate::accounts::domain::Accounts;
use crate::credentials;
use crate::error::IdentityError;
use crate::operators::domain::Operators;
use crate::tokens::domain::Subject;

/// A refresh token as presented; whether it names a live session is for [`Sessions`] to say.
#[derive(Debug, Clone)]
pub struct RefreshToken(Secret<String>);

impl RefreshToken {
    pub fn parse(field: &'static str, value: String) -> Result<Self, IdentityError> {
        if value.is_empty() {
            return Err(IdentityError::invalid(field, "required"));
        }
        Ok(Self(Secret::new(value)))
    }

    /// What is stored of it. The token is 256 random bits: nothing can be guessed from its
    /// digest, so a slow hash would only cost time at each refresh.
    fn digest(&self) -> Vec<u8> {
        digest(&SHA256, self.0.expose().as_bytes())
            .as_ref()
            .to_vec()
    }
}

/// A session just started: its refresh token, to be shown once.
#[derive(Debug)]
pub struct StartedSession {
    pub refresh_token: Secret<String>,
    pub expires_at: DateTime<Utc>,
}

pub struct Sessions {
    db: Db,
    lifetime: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    pub fn new(db: Db, lifetime: Duration) -> Self {
        Self { db, lifetime }
    }

    /// Starts a session for `subject`, just logged in. It counts as started when the login read
    /// the subject: an operator's password changed since then ends it, even a change that lands
    /// before the session is stored.
    pub async fn start(&self, subject: &Subject) -> Result<StartedSession, IdentityError> {
        let token = credentials::new_refresh_token()?;
        let digest = RefreshToken(token.clone()).digest();
        let lifetime = chrono::Duration::from_std(self.lifetime).map_err(|_| {
            IdentityError::FailedPrecondition("session lifetime out of range".to_owned())
        })?;
        let expires_at = Utc::now() + lifetime;
        let id = Uuid::now_v7();
        let (principal_id, kind, read_at) = (subject.id, subject.kind, subject.read_at);
        self.db
            .run(move |conn| {
                store::insert(
                    conn,
                    &NewSession {
                        id,
                        principal_id,
                        principal_kind: kind.as_str(),
                        token_digest: &digest,
                        created_at: read_at,
                        expires_at,
                    },
                )
                .map_err(IdentityError::from)
            })
            .await?;
        tracing::info!(principal.id = %principal_id, session.id = %id, "session started");
        Ok(StartedSession {
            refresh_token: token,
            expires_at,
        })
    }

    /// The principal of the live session `token` belongs to, as it is now (its scopes
    /// included), provided it may still use the session. Anything else, unknown token included,
    /// is [`IdentityError::SessionEnded`], alike.
    pub async fn subject(&self, token: &RefreshToken) -> Result<Subject, IdentityError> {
        let digest = token.digest();
        self.db
            .run(move |conn| {
                let now = Utc::now();
                let session = store::find_by_digest(conn, &digest)?
                    .filter(|session| session.ended_at.is_none() && session.expires_at > now)
                    .ok_or(IdentityError::SessionEnded)?;
                let subject =
                    principal_now(conn, &session, now)?.ok_or(IdentityError::SessionEnded)?;
                store::update_last_used(conn, session.id, now)?;
                Ok(subject)
            })
            .await
    }

    /// Ends the session `token` belongs to; false when it is unknown, ended or expired.
    pub async fn end(&self, token: &RefreshToken) -> Result<bool, IdentityError> {
        let digest = token.digest();
        let ended = self
            .db
            .run(move |conn| {
                store::update_end_by_digest(conn, &digest, Utc::now()).map_err(IdentityError::from)
            })
            .await?;
        if let Some((session_id, principal_id)) = ended {
            tracing::info!(principal.id = %principal_id, session.id = %session_id, "session ended");
        }
        Ok(ended.is_some())
    }
}

/// Ends every live session of `principal_id` in the caller's transaction (its password changed,
/// or it was disabled); returns how many, for [`log_ended`] once committed.
pub fn end_all_of(
    conn: &mut diesel::PgConnection,
    principal_id: Uuid,
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    Ok(store::update_end_by_principal(conn, principal_id, now)?)
}

/// Logs the sessions [`end_all_of`] ended, if any.
pub fn log_ended(principal_id: Uuid, count: usize) {
    if count > 0 {
        tracing::info!(principal.id = %principal_id, count, "session ended");
    }
}

/// The session's principal as it is now, when it may still use the session: enabled, of the
/// kind it started as, and for an operator, with no password change since the login.
fn principal_now(
    conn: &mut diesel::PgConnection,
    session: &SessionRow,
    now: DateTime<Utc>,
) -> Result<Option<Subject>, DbError> {
    if session.principal_kind == PrincipalKind::Operator.as_str() {
        let operator = Operators::find_principal(conn, session.principal_id)?;
        return Ok(operator
            .filter(|o| !o.disabled && o.password_changed_at <= session.created_at)
            .map(|o| Subject {
                id: o.id,
                kind: PrincipalKind::Operator,
                partner_id: None,
                granted: o.scopes,
                read_at: now,
            }));
    }
    let account = Accounts::find_principal(conn, session.principal_id)?;
    Ok(account
        .filter(|a| !a.disabled && a.kind.as_str() == session.principal_kind)
        .map(|a| Subject {
            id: a.id,
            kind: a.kind,
            partner_id: a.partner_id,
            granted: a.scopes,
            read_at: now,
        }))
}
