//! The suite's cryptography, on ring: authenticated encryption under a master key (for keys and
//! personal data at rest) and a wrapper that keeps secrets out of logs.

mod envelope;
mod secret;

pub use envelope::{BlindIndexKey, CryptoError, DataKey, MasterKey, MasterKeyArg};
pub use secret::Secret;
