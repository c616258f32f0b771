//! JSON Web Key Sets (RFC 7517) of Ed25519 public keys (RFC 8037 "OKP").

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// One public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    /// The raw public key, base64url without padding.
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    pub fn ed25519(kid: &str, public_key: &[u8]) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(public_key),
            kid: kid.to_owned(),
            alg: "EdDSA".to_owned(),
            use_: "sig".to_owned(),
        }
    }

    /// The raw public key, when this is an Ed25519 signing key.
    pub fn ed25519_public_key(&self) -> Option<Vec<u8>> {
        if self.kty != "OKP" || self.crv != "Ed25519" || self.alg != "EdDSA" {
            return None;
        }
        URL_SAFE_NO_PAD
            .decode(&self.x)
            .ok()
            .filter(|key| key.len() == 32)
    }
}

/// A set of public keys, as served by `GetJwks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}
