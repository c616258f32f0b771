//! Customer profiles: identity resolution, reads, updates and merges.

pub mod contacts;
pub mod domain;
pub mod grpc;
pub mod store;
pub mod view;
