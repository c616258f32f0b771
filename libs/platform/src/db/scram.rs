//! SCRAM-SHA-256 password verifiers (RFC 7677, PostgreSQL's format), computed on the client so
//! a role's password never travels in SQL text, which the server may write to its log.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// PostgreSQL's default iteration count.
const ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;

/// Why no verifier could be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    /// PostgreSQL normalises non-ASCII passwords with SASLprep before hashing; we do not, so
    /// such a verifier might not match.
    #[error("role passwords must be printable ASCII")]
    NotAscii,
    #[error("the system random generator failed")]
    Random,
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password`, with a fresh salt.
pub fn verifier(password: &str) -> Result<String, ScramError> {
    let mut salt = [0_u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| ScramError::Random)?;
    verifier_with_salt(password, &salt)
}

fn verifier_with_salt(password: &str, salt: &[u8]) -> Result<String, ScramError> {
    if !password.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ScramError::NotAscii);
    }
    let iterations = NonZeroU32::new(ITERATIONS).ok_or(ScramError::Random)?;
    let mut salted = [0_u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    Ok(format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key.as_ref()),
        STANDARD.encode(server_key.as_ref()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_7677_example() {
        // RFC 7677 section 3: user "user", password "pencil", salt "W22ZaJ0SNY7soEsUEjb6gQ==".
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = verifier_with_salt("pencil", &salt).unwrap();
        // StoredKey = H(ClientKey) and ServerKey from the RFC's SaltedPassword.
        assert_eq!(
            verifier,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn each_verifier_has_its_own_salt_and_non_ascii_is_refused() {
        assert_ne!(verifier("same").unwrap(), verifier("same").unwrap());
        assert_eq!(verifier("pässword"), Err(ScramError::NotAscii));
    }
}
