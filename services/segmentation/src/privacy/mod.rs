//! `ecrm.privacy.v1.PersonalData` for segmentation: what is held, export, erasure,
//! restriction.

pub mod domain;
pub mod grpc;
