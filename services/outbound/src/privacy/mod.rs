//! `ecrm.privacy.v1.PersonalData` for outbound: what is held, export, erasure, restriction.

pub mod domain;
pub mod grpc;
pub mod store;
