//! Data subject requests: their life, their deadline, and who did what to them.

pub mod deadline;
pub mod domain;
pub mod grpc;
pub mod objection;
pub mod store;
pub mod verification;
