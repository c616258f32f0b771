//! Signing keys: generated with ring, sealed under the master key, published before they sign,
//! retired after, and kept verifying until every token they signed has expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use ecrm_auth::{MAX_LEEWAY, MAX_TOKEN_LIFETIME, TokenSigner};
use ecrm_crypto::MasterKey;
use ecrm_platform::Db;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::store::{self, NewSigningKey, SigningKeyRow};
use crate::error::IdentityError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, signs nothing yet.
    Next,
    /// Signs every new token.
    Active,
    /// Signs nothing; published until `verify_until`.
    Retired,
}

impl KeyState {
    fn parse(state: &str) -> KeyState {
        match state {
            "next" => KeyState::Next,
            "active" => KeyState::Active,
            _ => KeyState::Retired,
        }
    }
}

/// A signing key as the outside sees it: never its private half.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    pub state: KeyState,
    pub public_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub verify_until: Option<DateTime<Utc>>,
}

impl From<SigningKeyRow> for SigningKey {
    fn from(row: SigningKeyRow) -> Self {
        Self {
            kid: row.kid,
            state: KeyState::parse(&row.state),
            public_key: row.public_key,
            created_at: row.created_at,
            activated_at: row.activated_at,
            retired_at: row.retired_at,
            verify_until: row.verify_until,
        }
    }
}

/// The service's signing keys.
pub struct Keys {
    db: Db,
    master: Arc<MasterKey>,
    /// How long a next key must have been published before it may sign: verifiers fetch keys
    /// at their refresh interval, and this must be longer.
    publish_delay: Duration,
    /// Unsealed signers by kid, so issuing a token opens no ciphertext.
    signers: Mutex<HashMap<String, Arc<TokenSigner>>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

/// What a rotation did.
enum Rotation {
    Rotated(Vec<SigningKey>),
    /// There was no next key: one is published now, and the rotation must wait for it.
    PublishedNext,
    /// The next key is too young to sign: verifiers may not have it yet.
    TooSoon {
        wait: Duration,
    },
}

/// Serialises changes to the key set across replicas.
fn lock(conn: &mut PgConnection) -> Result<(), IdentityError> {
    use diesel::RunQueryDsl;
    let key = ecrm_platform::db::lock_key("identity", "signing_keys");
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(conn)?;
    Ok(())
}

/// A fresh key pair: (kid, public key, sealed PKCS#8 private key).
fn generate(master: &MasterKey) -> Result<(String, Vec<u8>, Vec<u8>), IdentityError> {
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| IdentityError::Random)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| IdentityError::Random)?;
    let public = pair.public_key().as_ref().to_vec();
    // The kid names the key by its content (first 96 bits of SHA-256 of the public key).
    let digest = ring::digest::digest(&ring::digest::SHA256, &public);
    let kid: String = digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sealed = master.seal(seal_context(&kid).as_bytes(), pkcs8.as_ref())?;
    Ok((kid, public, sealed))
}

fn seal_context(kid: &str) -> String {
    format!("identity.signing_key:{kid}")
}

fn insert_new(
    conn: &mut PgConnection,
    master: &MasterKey,
    state: &str,
    now: DateTime<Utc>,
) -> Result<(), IdentityError> {
    let (kid, public, sealed) = generate(master)?;
    store::insert(
        conn,
        &NewSigningKey {
            kid: &kid,
            state,
            public_key: &public,
            private_key_sealed: &sealed,
            activated_at: (state == "active").then_some(now),
        },
    )?;
    tracing::info!(kid, state, "signing key created");
    Ok(())
}

impl Keys {
    pub fn new(db: Db, master: Arc<MasterKey>, publish_delay: Duration) -> Self {
        Self {
            db,
            master,
            publish_delay,
            signers: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure there is an active key and a next one (first start, or keys lost), and that
    /// the master key opens the active one: a wrong master key stops the service at start, not
    /// at its first token.
    pub async fn ensure(&self) -> Result<(), IdentityError> {
        let master = self.master.clone();
        self.db
            .run(move |conn| {
                lock(conn)?;
                let now = Utc::now();
                if store::find_by_state(conn, "active")?.is_none() {
                    insert_new(conn, &master, "active", now)?;
                }
                if store::find_by_state(conn, "next")?.is_none() {
                    insert_new(conn, &master, "next", now)?;
                }
                Ok::<_, IdentityError>(())
            })
            .await?;
        self.active_signer()
            .await
            .map(drop)
            .map_err(|error| match error {
                IdentityError::Crypto(_) => IdentityError::WrongMasterKey,
                other => other,
            })
    }

    /// Next becomes active, active retires (verifying as long as any token it signed can live),
    /// and a new next key is published. Refused while the next key is younger than the publish
    /// delay, so no token is signed by a key a verifier has not fetched. Returns every key.
    pub async fn rotate(&self) -> Result<Vec<SigningKey>, IdentityError> {
        let master = self.master.clone();
        let overlap = chrono::Duration::from_std(MAX_TOKEN_LIFETIME + MAX_LEEWAY)
            .map_err(|_| IdentityError::FailedPrecondition("token lifetime out of range".into()))?;
        let delay = chrono::Duration::from_std(self.publish_delay)
            .map_err(|_| IdentityError::FailedPrecondition("publish delay out of range".into()))?;
        let rotation = self
            .db
            .run(move |conn| {
                lock(conn)?;
                let now = Utc::now();
                let Some(next) = store::find_by_state(conn, "next")? else {
                    insert_new(conn, &master, "next", now)?;
                    return Ok::<_, IdentityError>(Rotation::PublishedNext);
                };
                let ready_at = next.created_at + delay;
                if ready_at > now {
                    let wait = (ready_at - now).to_std().unwrap_or_default();
                    return Ok(Rotation::TooSoon { wait });
                }
                if let Some(active) = store::find_by_state(conn, "active")? {
                    store::update_retire(conn, &active.kid, now, now + overlap)?;
                }
                store::update_activate(conn, &next.kid, now)?;
                insert_new(conn, &master, "next", now)?;
                tracing::info!(kid = next.kid, "signing keys rotated");
                let keys = store::list_all(conn)?
                    .into_iter()
                    .map(SigningKey::from)
                    .collect();
                Ok(Rotation::Rotated(keys))
            })
            .await?;
        match rotation {
            Rotation::Rotated(keys) => Ok(keys),
            Rotation::PublishedNext => Err(IdentityError::FailedPrecondition(format!(
                "there was no next key: one is published now; rotate again in {} s, once verifiers have it",
                self.publish_delay.as_secs().max(1)
            ))),
            Rotation::TooSoon { wait } => Err(IdentityError::FailedPrecondition(format!(
                "the next key was published too recently for every verifier to have it; rotate again in {} s",
                wait.as_secs().max(1)
            ))),
        }
    }

    pub async fn list(&self) -> Result<Vec<SigningKey>, IdentityError> {
        self.db
            .run(|conn| {
                Ok(store::list_all(conn)?
                    .into_iter()
                    .map(SigningKey::from)
                    .collect())
            })
            .await
    }

    /// The keys verifiers must know now.
    pub async fn published(&self) -> Result<Vec<SigningKey>, IdentityError> {
        self.db
            .run(|conn| {
                Ok(store::list_published(conn, Utc::now())?
                    .into_iter()
                    .map(SigningKey::from)
                    .collect())
            })
            .await
    }

    /// The signer of the active key, read from the database on every call so that every
    /// replica signs with the same key right after a rotation.
    pub async fn active_signer(&self) -> Result<Arc<TokenSigner>, IdentityError> {
        let row = self
            .db
            .run(|conn| store::find_by_state(conn, "active").map_err(IdentityError::from))
            .await?
            .ok_or_else(|| IdentityError::FailedPrecondition("no active signing key".to_owned()))?;
        self.signer(&row)
    }

    fn signer(&self, row: &SigningKeyRow) -> Result<Arc<TokenSigner>, IdentityError> {
        let mut signers = self.signers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signer) = signers.get(&row.kid) {
            return Ok(signer.clone());
        }
        let pkcs8 = self
            .master
            .open(seal_context(&row.kid).as_bytes(), &row.private_key_sealed)?;
        let signer = Arc::new(TokenSigner::from_pkcs8(&row.kid, &pkcs8));
        signers.insert(row.kid.clone(), signer.clone());
        Ok(signer)
    }

    /// The signer of any stored key, by kid: for tests and tools that must sign as the service.
    pub async fn signer_by_kid(&self, kid: &str) -> Result<Arc<TokenSigner>, IdentityError> {
        let kid = kid.to_owned();
        let row = self
            .db
            .run(move |conn| store::find_by_kid(conn, &kid).map_err(IdentityError::from))
            .await?
            .ok_or(IdentityError::NotFound("signing key"))?;
        self.signer(&row)
    }
}
