//! Tokens: issuing, revoking, and what verifiers fetch.

pub mod attempts;
pub mod domain;
pub mod grpc;
pub mod store;
