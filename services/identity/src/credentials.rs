//! Secrets and passwords: generated with ring, hashed with Argon2id at OWASP's recommended
//! cost, checked in constant time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecrm_crypto::Secret;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::IdentityError;

/// OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer inputs only cost hashing time.
pub const MAX_SECRET_BYTES: usize = 1024;

/// How long a login waits for a hashing slot before it is turned away.
const HASHING_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Hashing on blocking threads, at most one per core at a time: the token endpoint needs no
/// token, so unbounded hashing would let anyone exhaust memory (19 MiB each) and threads.
#[derive(Debug, Clone)]
pub struct HashPool {
    hasher: std::sync::Arc<Hasher>,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl HashPool {
    pub fn new(hasher: Hasher) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            hasher: std::sync::Arc::new(hasher),
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, IdentityError> {
        match tokio::time::timeout(HASHING_QUEUE_WAIT, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(IdentityError::Busy),
        }
    }

    pub async fn hash(&self, secret: &Secret<String>) -> Result<String, IdentityError> {
        let permit = self.slot().await?;
        let (hasher, secret) = (self.hasher.clone(), secret.clone());
        // The slot is released by the blocking work itself: a caller that gives up does not
        // stop a hash already running, so it must not free its slot either.
        tokio::task::spawn_blocking(move || {
            let hashed = hasher.hash(secret.expose());
            drop(permit);
            hashed
        })
        .await?
    }

    /// [`Hasher::matches_any`] against exactly `count` hashes, padding with the decoy, so
    /// timing tells nothing of how many secrets an account has.
    pub async fn matches_any(
        &self,
        secret: &Secret<String>,
        hashes: Vec<Secret<String>>,
        count: usize,
    ) -> Result<bool, IdentityError> {
        let permit = self.slot().await?;
        let (hasher, secret) = (self.hasher.clone(), secret.clone());
        let matched = tokio::task::spawn_blocking(move || {
            let mut hashes: Vec<String> = hashes.into_iter().map(Secret::into_inner).collect();
            while hashes.len() < count {
                hashes.push(hasher.decoy.clone());
            }
            // A decoy never matches: it hashes 32 random bytes nobody knows.
            let matched = hasher.matches_any(secret.expose(), &hashes);
            drop(permit);
            matched
        })
        .await?;
        Ok(matched)
    }
}

/// Hashes and checks secrets. Slow on purpose: used through [`HashPool`].
pub struct Hasher {
    argon: Argon2<'static>,
    /// Checked against when the principal is unknown, so an unknown name costs as much time as
    /// a wrong secret.
    decoy: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher(argon2id)")
    }
}

impl Hasher {
    pub fn new() -> Result<Self, IdentityError> {
        let params =
            Params::new(MEMORY_KIB, ITERATIONS, LANES, None).map_err(|_| IdentityError::Hashing)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy_secret = random_token(32)?;
        let mut hasher = Self {
            argon,
            decoy: String::new(),
        };
        hasher.decoy = hasher.hash(decoy_secret.expose())?;
        Ok(hasher)
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of `secret`, with a fresh salt.
    pub fn hash(&self, secret: &str) -> Result<String, IdentityError> {
        let mut salt = [0_u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| IdentityError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| IdentityError::Hashing)?;
        self.argon
            .hash_password(secret.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|_| IdentityError::Hashing)
    }

    /// Whether `secret` matches any of `hashes`. Every hash is checked (no early exit), and with
    /// no hash at all the decoy is, so timing tells nothing about which, or whether any, exist.
    pub fn matches_any(&self, secret: &str, hashes: &[String]) -> bool {
        if secret.len() > MAX_SECRET_BYTES {
            return false;
        }
        if hashes.is_empty() {
            let _ = self.matches(secret, &self.decoy);
            return false;
        }
        hashes
            .iter()
            .fold(false, |found, hash| self.matches(secret, hash) | found)
    }

    fn matches(&self, secret: &str, hash: &str) -> bool {
        PasswordHash::new(hash).is_ok_and(|parsed| {
            self.argon
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
    }
}

/// `bytes` random bytes, base64url.
fn random_token(bytes: usize) -> Result<Secret<String>, IdentityError> {
    let mut buffer = vec![0_u8; bytes];
    SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| IdentityError::Random)?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(buffer)))
}

/// A new client secret: 256 random bits.
pub fn new_client_secret() -> Result<Secret<String>, IdentityError> {
    Ok(Secret::new(format!(
        "ecrm_sk_{}",
        random_token(32)?.expose()
    )))
}

/// A new session refresh token: 256 random bits, prefixed so a leak scanner recognises it.
pub fn new_refresh_token() -> Result<Secret<String>, IdentityError> {
    Ok(Secret::new(format!(
        "{REFRESH_TOKEN_PREFIX}{}",
        random_token(32)?.expose()
    )))
}

/// What every refresh token starts with.
pub const REFRESH_TOKEN_PREFIX: &str = "ecrm_rt_";

/// A new client id: not secret, but not guessable either.
pub fn new_client_id() -> Result<String, IdentityError> {
    Ok(format!("ecrm_ci_{}", random_token(12)?.expose()))
}

/// A new operator password for the bootstrap admin: 144 random bits.
pub fn new_password() -> Result<Secret<String>, IdentityError> {
    random_token(18)
}

/// Why `password` is not acceptable for an operator, if it is not.
pub fn check_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_SECRET_BYTES {
        return Err(format!("must be at most {MAX_SECRET_BYTES} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_at_owasp_cost_and_verify() {
        let hasher = Hasher::new().unwrap();
        let hash = hasher.hash("correct horse battery staple").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.matches_any("correct horse battery staple", std::slice::from_ref(&hash)));
        assert!(!hasher.matches_any("Correct horse battery staple", std::slice::from_ref(&hash)));
        assert!(!hasher.matches_any("anything", &[]));
        let other = hasher.hash("second secret value").unwrap();
        assert!(hasher.matches_any("second secret value", &[hash, other]));
    }

    #[test]
    fn generated_values_differ_and_passwords_have_a_minimum() {
        assert_ne!(new_client_secret().unwrap(), new_client_secret().unwrap());
        assert!(new_client_id().unwrap().starts_with("ecrm_ci_"));
        let refresh = new_refresh_token().unwrap();
        assert!(refresh.expose().starts_with(REFRESH_TOKEN_PREFIX));
        // 32 bytes, base64url without padding: 43 characters.
        assert_eq!(refresh.expose().len(), REFRESH_TOKEN_PREFIX.len() + 43);
        assert_ne!(refresh, new_refresh_token().unwrap());
        assert!(check_password("short").is_err());
        assert!(check_password(new_password().unwrap().expose()).is_ok());
    }
}
