//! Authenticated encryption under a service master key: AES-256-GCM with a random nonce per
//! message, and associated data that binds a ciphertext to what it belongs to.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// First byte of every sealed value, so the format can change without guessing.
const FORMAT_V1: u8 = 1;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("a master key is 32 bytes, base64-encoded")]
    BadKey,
    #[error("the system random generator failed")]
    Random,
    #[error("the sealed value is malformed or was not sealed with this key and context")]
    Unsealable,
}

/// AES-256-GCM with a random nonce per message; the one sealed format of this crate:
/// `FORMAT_V1 || nonce || ciphertext || tag`.
struct Aead {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Aead {
    fn new(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0_u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut sealed =
            Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed[1 + NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Unsealable)?;
        sealed.extend_from_slice(tag.as_ref());
        Ok(sealed)
    }

    fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let Some((&FORMAT_V1, rest)) = sealed.split_first() else {
            return Err(CryptoError::Unsealable);
        };
        if rest.len() < NONCE_LEN {
            return Err(CryptoError::Unsealable);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unsealable)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .map_err(|_| CryptoError::Unsealable)?;
        let len = plaintext.len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

fn random_key(rng: &SystemRandom) -> Result<[u8; KEY_LEN], CryptoError> {
    let mut bytes = [0_u8; KEY_LEN];
    rng.fill(&mut bytes).map_err(|_| CryptoError::Random)?;
    Ok(bytes)
}

/// A 256-bit key that seals other keys and data at rest, and from which purpose-bound keys are
/// derived (HKDF-SHA256). `Debug` prints nothing of it.
pub struct MasterKey {
    aead: Aead,
    derivation: ring::hkdf::Prk,
}

impl MasterKey {
    /// A fresh random key, with its base64 form to store.
    pub fn generate() -> Result<(Self, String), CryptoError> {
        let bytes = random_key(&SystemRandom::new())?;
        let encoded = STANDARD.encode(bytes);
        Ok((Self::from_bytes(&bytes)?, encoded))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let derivation =
            ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"ecrm-master-key-v1").extract(bytes);
        Ok(Self {
            aead: Aead::new(bytes)?,
            derivation,
        })
    }

    /// Encrypts `plaintext`; `context` (e.g. "identity.signing_key:<kid>") must be given again
    /// to open it, so a ciphertext moved to another row does not decrypt.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.aead.seal(context, plaintext)
    }

    /// Decrypts what [`MasterKey::seal`] made with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.aead.open(context, sealed)
    }

    /// A fresh data key, and its form wrapped (sealed) under this master key for `context` (e.g.
    /// the subject it belongs to): store only the wrapped form.
    pub fn new_data_key(&self, context: &[u8]) -> Result<(DataKey, Vec<u8>), CryptoError> {
        let bytes = random_key(&self.aead.rng)?;
        let wrapped = self.seal(context, &bytes)?;
        Ok((DataKey(Aead::new(&bytes)?), wrapped))
    }

    /// The data key that [`MasterKey::new_data_key`] wrapped for `context`.
    pub fn open_data_key(&self, context: &[u8], wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let bytes = self.open(context, wrapped)?;
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::Unsealable);
        }
        Ok(DataKey(Aead::new(&bytes)?))
    }
}

/// A key that encrypts one owner's data (e.g. one data subject's), so that destroying its
/// wrapped form makes every copy of that data unreadable (crypto-shredding).
pub struct DataKey(Aead);

impl DataKey {
    /// Encrypts `plaintext` bound to `context` (e.g. the row and column it is stored in).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0.seal(context, plaintext)
    }

    /// Decrypts what [`DataKey::seal`] made with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0.open(context, sealed)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(****)")
    }
}

impl MasterKey {
    /// The blind-index key for `purpose`: the same master key and purpose always give the same
    /// key, different purposes unrelated ones.
    pub fn blind_index_key(&self, purpose: &str) -> Result<BlindIndexKey, CryptoError> {
        let info = [purpose.as_bytes()];
        let okm = self
            .derivation
            .expand(&info, ring::hmac::HMAC_SHA256)
            .map_err(|_| CryptoError::BadKey)?;
        Ok(BlindIndexKey(ring::hmac::Key::from(okm)))
    }
}

/// HKDF output of 32 bytes: an Ed25519 seed.
struct SeedLen;

impl ring::hkdf::KeyType for SeedLen {
    fn len(&self) -> usize {
        32
    }
}

impl MasterKey {
    /// The Ed25519 signing key for `purpose`, derived from the master key: the same master key
    /// and purpose always give the same key pair, so nothing more needs storing or backing up.
    pub fn signing_key(
        &self,
        purpose: &str,
    ) -> Result<ring::signature::Ed25519KeyPair, CryptoError> {
        // Labelled, so no purpose string derives the same bytes as a blind-index key.
        let info = [b"ed25519-seed:".as_slice(), purpose.as_bytes()];
        let okm = self
            .derivation
            .expand(&info, SeedLen)
            .map_err(|_| CryptoError::BadKey)?;
        let mut seed = [0_u8; 32];
        okm.fill(&mut seed).map_err(|_| CryptoError::BadKey)?;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| CryptoError::BadKey);
        seed.fill(0);
        pair
    }
}

/// Finds a value without storing it: an HMAC-SHA256 of the value under a key derived from the
/// master key, so the index cannot be reversed by hashing guesses without that key.
#[derive(Clone)]
pub struct BlindIndexKey(ring::hmac::Key);

impl BlindIndexKey {
    /// The index of `value`, hex-encoded (64 characters).
    pub fn index(&self, value: &[u8]) -> String {
        ring::hmac::sign(&self.0, value)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The HMAC-SHA256 of `value` under this key, raw: for a caller that signs a value it
    /// hands out (a link) rather than indexing one it keeps.
    pub fn sign(&self, value: &[u8]) -> [u8; 32] {
        let mut mac = [0_u8; 32];
        mac.copy_from_slice(ring::hmac::sign(&self.0, value).as_ref());
        mac
    }

    /// Whether `tag` is the MAC of `value`, or its first bytes (at least 16), compared in
    /// constant time.
    pub fn verify_prefix(&self, value: &[u8], tag: &[u8]) -> bool {
        if !(16..=32).contains(&tag.len()) {
            return false;
        }
        let expected = self.sign(value);
        // ring's only public constant-time comparison is of whole MACs: compare the MACs of
        // the two prefixes, equal exactly when the prefixes are.
        let blinded = ring::hmac::sign(&self.0, &expected[..tag.len()]);
        ring::hmac::verify(&self.0, tag, blinded.as_ref()).is_ok()
    }
}

impl fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndexKey(****)")
    }
}

impl FromStr for MasterKey {
    type Err = CryptoError;

    /// Parses the base64 form (standard alphabet, padded) of 32 bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = STANDARD.decode(s.trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::BadKey);
        }
        Self::from_bytes(&bytes)
    }
}

/// A parsed master key, shareable: what a service's configuration holds (clap values must be
/// `Clone`).
#[derive(Debug, Clone)]
pub struct MasterKeyArg(pub std::sync::Arc<MasterKey>);

impl FromStr for MasterKeyArg {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(std::sync::Arc::new(s.parse()?)))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::generate().unwrap().0
    }

    #[test]
    fn sealed_values_open_with_the_same_key_and_context() {
        let key = key();
        let sealed = key
            .seal(b"identity.signing_key:k1", b"private key bytes")
            .unwrap();
        assert_ne!(&sealed[1 + NONCE_LEN..], b"private key bytes");
        assert_eq!(
            key.open(b"identity.signing_key:k1", &sealed).unwrap(),
            b"private key bytes"
        );
    }

    #[test]
    fn another_context_another_key_or_a_flipped_bit_do_not_open() {
        let key = key();
        let sealed = key.seal(b"row:1", b"secret").unwrap();
        assert_eq!(key.open(b"row:2", &sealed), Err(CryptoError::Unsealable));
        assert_eq!(
            self::key().open(b"row:1", &sealed),
            Err(CryptoError::Unsealable)
        );
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(key.open(b"row:1", &tampered), Err(CryptoError::Unsealable));
        assert_eq!(key.open(b"row:1", &[]), Err(CryptoError::Unsealable));
        assert_eq!(
            key.open(b"row:1", &[FORMAT_V1, 1, 2]),
            Err(CryptoError::Unsealable)
        );
    }

    #[test]
    fn blind_indexes_are_stable_per_purpose_and_key() {
        let (key, encoded) = MasterKey::generate().unwrap();
        let again: MasterKey = encoded.parse().unwrap();
        let login = key.blind_index_key("login").unwrap();
        assert_eq!(
            login.index(b"jane"),
            again.blind_index_key("login").unwrap().index(b"jane")
        );
        assert_ne!(login.index(b"jane"), login.index(b"john"));
        assert_ne!(
            login.index(b"jane"),
            key.blind_index_key("email").unwrap().index(b"jane")
        );
        assert_ne!(
            login.index(b"jane"),
            self::key().blind_index_key("login").unwrap().index(b"jane")
        );
        assert_eq!(login.index(b"jane").len(), 64);
    }

    #[test]
    fn a_signature_or_its_prefix_verifies_under_its_key_only() {
        let key = key().blind_index_key("links").unwrap();
        let mac = key.sign(b"payload");
        assert_eq!(hex_of(&mac), key.index(b"payload"));
        assert!(key.verify_prefix(b"payload", &mac));
        assert!(key.verify_prefix(b"payload", &mac[..16]));
        assert!(!key.verify_prefix(b"payload", &mac[..15]));
        assert!(!key.verify_prefix(b"payload", &[]));
        assert!(!key.verify_prefix(b"payloaD", &mac[..16]));
        let mut flipped = mac;
        flipped[3] ^= 0x40;
        assert!(!key.verify_prefix(b"payload", &flipped[..16]));
        let other = self::key().blind_index_key("links").unwrap();
        assert!(!other.verify_prefix(b"payload", &mac[..16]));
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_same_plaintext_seals_differently_each_time() {
        let key = key();
        assert_ne!(key.seal(b"c", b"x").unwrap(), key.seal(b"c", b"x").unwrap());
    }

    #[test]
    fn a_stored_key_parses_back_and_bad_keys_are_refused() {
        let (key, encoded) = MasterKey::generate().unwrap();
        let parsed: MasterKey = encoded.parse().unwrap();
        let sealed = key.seal(b"c", b"x").unwrap();
        assert_eq!(parsed.open(b"c", &sealed).unwrap(), b"x");
        assert!(matches!(
            "short".parse::<MasterKey>(),
            Err(CryptoError::BadKey)
        ));
        assert!(matches!(
            STANDARD.encode([0_u8; 16]).parse::<MasterKey>(),
            Err(CryptoError::BadKey)
        ));
        assert_eq!(format!("{parsed:?}"), "MasterKey(****)");
    }

    #[test]
    fn data_keys_open_only_through_their_wrapped_form_and_context() {
        let master = key();
        let (data, wrapped) = master.new_data_key(b"subject:1").unwrap();
        let sealed = data.seal(b"profile:name", b"Jane").unwrap();
        let reopened = master.open_data_key(b"subject:1", &wrapped).unwrap();
        assert_eq!(reopened.open(b"profile:name", &sealed).unwrap(), b"Jane");
        assert_eq!(
            reopened.open(b"profile:email", &sealed),
            Err(CryptoError::Unsealable)
        );
        assert!(master.open_data_key(b"subject:2", &wrapped).is_err());
        let (other, _) = master.new_data_key(b"subject:1").unwrap();
        assert_eq!(
            other.open(b"profile:name", &sealed),
            Err(CryptoError::Unsealable)
        );
        assert_eq!(format!("{data:?}"), "DataKey(****)");
    }
}

#[cfg(test)]
mod signing_tests {
    use ring::signature::{ED25519, KeyPair, UnparsedPublicKey};

    use super::*;

    #[test]
    fn a_signing_key_is_the_same_for_the_same_key_and_purpose_only() {
        let (master, encoded) = MasterKey::generate().unwrap_or_else(|_| unreachable!());
        let again: MasterKey = encoded.parse().unwrap_or_else(|_| unreachable!());
        let key = |m: &MasterKey, purpose| {
            m.signing_key(purpose)
                .map(|k| k.public_key().as_ref().to_vec())
                .unwrap_or_default()
        };
        assert_eq!(key(&master, "a"), key(&again, "a"));
        assert_ne!(key(&master, "a"), key(&master, "b"));
        let pair = master.signing_key("a").unwrap_or_else(|_| unreachable!());
        let signature = pair.sign(b"message");
        assert!(
            UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref())
                .verify(b"message", signature.as_ref())
                .is_ok()
        );
    }
}
