//! `ecrm.privacy.v1.PersonalData` for profiles: what is held, export, erasure,
//! restriction, rectification.

pub mod domain;
pub mod grpc;
pub mod rectify;
