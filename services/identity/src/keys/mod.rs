//! The Ed25519 keys that sign tokens.

pub mod domain;
pub mod grpc;
pub mod store;
