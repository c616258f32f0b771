//! Service accounts of internal services and partners.

pub mod domain;
pub mod grpc;
pub mod store;
