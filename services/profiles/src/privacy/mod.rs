//! `ecrm.privacy.v1.PersonalData` for profiles: what is held, export, erasure, restriction.

pub mod domain;
pub mod grpc;
