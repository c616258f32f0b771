//! `ecrm.privacy.v1.PersonalData` for consent: what it holds of a subject, its export, what an
//! erasure may and may not remove here, and restriction.

pub mod domain;
pub mod grpc;
pub mod store;
