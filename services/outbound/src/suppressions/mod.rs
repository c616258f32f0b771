//! Suppressions: addresses never sent to, kept as blind indexes of their normalised form.

pub mod address;
pub mod domain;
pub mod grpc;
pub mod store;
