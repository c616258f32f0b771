//! Campaigns: one template to many subjects, each message through the gate in its turn.

pub mod domain;
pub mod grpc;
pub mod store;
