//! The identity service's own verifier reads keys and revocations straight from its store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ecrm_auth::{SourceError, TrustSnapshot, TrustSource};

use crate::tokens::domain::Tokens;

/// Keys and revocations from this service's database: what `GetJwks` and `ListRevocations`
/// give other services.
pub struct LocalTrust {
    pub tokens: Arc<Tokens>,
}

impl TrustSource for LocalTrust {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<TrustSnapshot, SourceError>> + Send + '_>> {
        Box::pin(async move {
            let (_, keys) = self
                .tokens
                .jwks()
                .await
                .map_err(|e| SourceError(Box::new(e)))?;
            let revocations = self
                .tokens
                .revocations()
                .await
                .map_err(|e| SourceError(Box::new(e)))?;
            Ok(TrustSnapshot {
                keys: keys.into_iter().map(|k| (k.kid, k.public_key)).collect(),
                revoked_tokens: revocations
                    .revoked_tokens
                    .into_iter()
                    .map(|(jti, _)| jti)
                    .collect(),
                disabled_subjects: revocations.disabled_subjects,
            })
        })
    }
}
