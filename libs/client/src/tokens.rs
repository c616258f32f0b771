//! Bearer tokens from identity, one per audience and scopes, kept until shortly before they
//! expire; and sessions, which let a client renew them without its password or secret.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::issue_token_request::Grant;
use ecrm_proto::ecrm::identity::v1::tokens_client::TokensClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::credentials::Credentials;

/// A token is renewed this long before it expires, so a call never leaves with a token that
/// dies on the way.
const RENEW_BEFORE: chrono::Duration = chrono::Duration::seconds(60);
/// A login identity turns away with a wait no longer than this (too many logins of one account
/// at once) is tried again after that wait; a longer wait is a block after failed logins, and
/// is the caller's to see.
const LONGEST_LOGIN_WAIT: Duration = Duration::from_secs(2);
/// Logins tried in all, the first included, while identity asks to wait.
const LOGIN_ATTEMPTS: u32 = 10;

/// One access token, as cached (and as a tool may keep it on disk between runs).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    pub audience: String,
    pub scopes: Vec<String>,
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
}

impl CachedToken {
    fn fresh(&self, now: DateTime<Utc>) -> bool {
        now + RENEW_BEFORE < self.expires_at
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A session started at login: its refresh token stands in for the credentials until it
/// expires or is ended.
#[derive(Clone)]
pub struct Session {
    pub refresh_token: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

type Key = (String, Vec<String>);

/// The tokens of one principal, obtained from identity.
pub struct Tokens {
    identity: Channel,
    credentials: std::sync::Mutex<Credentials>,
    /// One login at a time: concurrent calls needing the same token wait for the one login
    /// rather than each starting their own (logins are rare, and a password check is slow).
    cache: tokio::sync::Mutex<HashMap<Key, CachedToken>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens for `credentials`, issued by the identity service on `identity`.
    pub fn new(identity: Channel, credentials: Credentials) -> Self {
        Self {
            identity,
            credentials: std::sync::Mutex::new(credentials),
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    fn credentials(&self) -> Credentials {
        match self.credentials.lock() {
            Ok(credentials) => credentials.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_credentials(&self, credentials: Credentials) {
        match self.credentials.lock() {
            Ok(mut current) => *current = credentials,
            Err(poisoned) => *poisoned.into_inner() = credentials,
        }
    }

    /// A token for `audience` carrying `scopes`: the cached one while it has more than a minute
    /// left, else a fresh one from identity.
    pub async fn token(&self, audience: &str, scopes: &[String]) -> Result<String, tonic::Status> {
        let key = (audience.to_owned(), scopes.to_vec());
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.get(&key)
            && cached.fresh(Utc::now())
        {
            return Ok(cached.access_token.clone());
        }
        let (issued, _) = self.issue(audience, scopes, false).await?;
        let issued = issued
            .ok_or_else(|| tonic::Status::internal("identity issued no token for the scopes"))?;
        let token = issued.access_token.clone();
        cache.insert(key, issued);
        Ok(token)
    }

    /// Any fresh token for `audience`, for methods that need only a valid one.
    pub async fn any_for(&self, audience: &str) -> Option<String> {
        let now = Utc::now();
        self.cache
            .lock()
            .await
            .values()
            .find(|cached| cached.audience == audience && cached.fresh(now))
            .map(|cached| cached.access_token.clone())
    }

    /// Drops the token for `audience` and `scopes`, refused by its service (revoked, or signed
    /// by a key no longer trusted): the next call gets a new one.
    pub async fn forget(&self, audience: &str, scopes: &[String]) {
        self.cache
            .lock()
            .await
            .remove(&(audience.to_owned(), scopes.to_vec()));
    }

    /// Every cached token still fresh, for a tool that keeps them between runs.
    pub async fn cached(&self) -> Vec<CachedToken> {
        let now = Utc::now();
        let mut tokens: Vec<CachedToken> = self
            .cache
            .lock()
            .await
            .values()
            .filter(|cached| cached.fresh(now))
            .cloned()
            .collect();
        tokens.sort_by(|a, b| (&a.audience, &a.scopes).cmp(&(&b.audience, &b.scopes)));
        tokens
    }

    /// Puts back tokens kept from an earlier run; stale ones are left out.
    pub async fn restore(&self, tokens: impl IntoIterator<Item = CachedToken>) {
        let now = Utc::now();
        let mut cache = self.cache.lock().await;
        for token in tokens.into_iter().filter(|token| token.fresh(now)) {
            cache.insert((token.audience.clone(), token.scopes.clone()), token);
        }
    }

    /// Logs in with the service-account or operator credentials and starts a session; from then
    /// on tokens come from the session's refresh token, and the credentials are forgotten.
    /// `audience` and `scopes` name a first token, issued with it and cached; with no scopes
    /// the session starts without one.
    pub async fn start_session(
        &self,
        audience: &str,
        scopes: &[String],
    ) -> Result<Session, tonic::Status> {
        if matches!(self.credentials(), Credentials::Session { .. }) {
            return Err(tonic::Status::failed_precondition(
                "a session is already in use: log in with credentials to start a new one",
            ));
        }
        let mut cache = self.cache.lock().await;
        let (issued, session) = self.issue(audience, scopes, true).await?;
        let session = session.ok_or_else(|| {
            tonic::Status::internal("identity started no session: is it an older version?")
        })?;
        if let Some(issued) = issued {
            cache.insert((audience.to_owned(), scopes.to_vec()), issued);
        }
        self.set_credentials(Credentials::session(session.refresh_token.clone()));
        Ok(session)
    }

    /// Ends the session in use, if any, and forgets every token. Returns whether identity
    /// ended a session (false when it had ended already or there was none).
    pub async fn end_session(&self) -> Result<bool, tonic::Status> {
        self.cache.lock().await.clear();
        let Credentials::Session { refresh_token } = self.credentials() else {
            return Ok(false);
        };
        let ended = TokensClient::new(self.identity.clone())
            .end_session(pb::EndSessionRequest { refresh_token })
            .await?
            .into_inner()
            .ended;
        Ok(ended)
    }

    async fn issue(
        &self,
        audience: &str,
        scopes: &[String],
        start_session: bool,
    ) -> Result<(Option<CachedToken>, Option<Session>), tonic::Status> {
        let grant = match self.credentials() {
            Credentials::ServiceAccount {
                client_id,
                client_secret,
            } => Grant::ClientCredentials(pb::ClientCredentials {
                client_id,
                client_secret,
            }),
            Credentials::Operator { username, password } => {
                Grant::OperatorPassword(pb::OperatorPassword { username, password })
            }
            Credentials::Session { refresh_token } => Grant::RefreshToken(refresh_token),
        };
        let request = pb::IssueTokenRequest {
            grant: Some(grant),
            scopes: scopes.to_vec(),
            audience: audience.to_owned(),
            start_session,
        };
        let mut attempt = 1;
        let issued = loop {
            match TokensClient::new(self.identity.clone())
                .issue_token(request.clone())
                .await
            {
                Ok(issued) => break issued.into_inner(),
                Err(status) => match login_wait(&status) {
                    Some(wait) if attempt < LOGIN_ATTEMPTS => {
                        tracing::debug!(attempt, ?wait, "identity asks to wait, logging in again");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    _ => return Err(status),
                },
            }
        };
        let session = (!issued.refresh_token.is_empty()).then(|| Session {
            refresh_token: issued.refresh_token,
            expires_at: issued.session_expires_at.and_then(timestamp),
        });
        if issued.access_token.is_empty() {
            return Ok((None, session));
        }
        let expires_at = issued
            .expires_at
            .and_then(timestamp)
            .ok_or_else(|| tonic::Status::internal("identity issued a token without an expiry"))?;
        let token = CachedToken {
            audience: audience.to_owned(),
            scopes: scopes.to_vec(),
            access_token: issued.access_token,
            expires_at,
        };
        Ok((Some(token), session))
    }
}

/// The wait identity asks for before the next login, when it turned this one away for a moment
/// (RESOURCE_EXHAUSTED with a short retry delay).
fn login_wait(status: &tonic::Status) -> Option<Duration> {
    if status.code() != tonic::Code::ResourceExhausted {
        return None;
    }
    let wait = status.get_details_retry_info()?.retry_delay?;
    (wait <= LONGEST_LOGIN_WAIT).then_some(wait)
}

fn timestamp(at: prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}
