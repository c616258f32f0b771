//! The master keys of the suite's services, given as values: where they are kept (files, a
//! secret store, the environment) is the caller's business.

use std::sync::Arc;

use ecrm_crypto::{CryptoError, MasterKey};

/// One master key per service that encrypts or signs: each its own, so no service can open
/// another's data. Segmentation holds nothing that needs one.
#[derive(Clone)]
pub struct SuiteKeys {
    /// Seals identity's signing keys and keys its login throttle.
    pub identity: Arc<MasterKey>,
    /// Wraps each customer's data key at profiles.
    pub profiles: Arc<MasterKey>,
    /// Derives consent's checkpoint and document signing keys (erasure certificates, export
    /// manifests).
    pub consent: Arc<MasterKey>,
    /// Derives outbound's suppression index key and unsubscribe link key.
    pub outbound: Arc<MasterKey>,
}

impl SuiteKeys {
    /// Fresh keys from the system's random generator: for a suite whose data need not
    /// outlive it (tests, demos).
    pub fn generate() -> Result<Self, CryptoError> {
        let key = || MasterKey::generate().map(|(key, _)| Arc::new(key));
        Ok(Self {
            identity: key()?,
            profiles: key()?,
            consent: key()?,
            outbound: key()?,
        })
    }
}

impl std::fmt::Debug for SuiteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SuiteKeys(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_by_service_and_print_nothing() {
        let keys = SuiteKeys::generate().unwrap();
        let public = |key: &MasterKey| {
            use ring::signature::KeyPair as _;
            key.signing_key("probe")
                .unwrap()
                .public_key()
                .as_ref()
                .to_vec()
        };
        let all = [
            &keys.identity,
            &keys.profiles,
            &keys.consent,
            &keys.outbound,
        ]
        .map(|k| public(k));
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(format!("{keys:?}"), "SuiteKeys(****)");
    }
}
