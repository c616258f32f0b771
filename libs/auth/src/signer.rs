//! Signing tokens with an Ed25519 key (identity service, and tests that mint tokens).

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::claims::Claims;

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the token")]
pub struct SignError(#[source] jsonwebtoken::errors::Error);

/// An Ed25519 private key with its `kid`.
pub struct TokenSigner {
    kid: String,
    key: EncodingKey,
}

impl TokenSigner {
    /// `pkcs8` is the private key in PKCS#8 DER, as ring's `Ed25519KeyPair::generate_pkcs8` makes it.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Self {
        Self {
            kid: kid.to_owned(),
            key: EncodingKey::from_ed_der(pkcs8),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The compact JWT for `claims`, with `alg: EdDSA`, `typ: JWT` and this key's `kid`.
    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(SignError)
    }
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}
