//! The consent ledger: every decision of every subject, append-only and hash-chained per
//! subject, and what it says is allowed.

pub mod chain;
pub mod checkpoint;
pub mod checkpoint_store;
pub mod domain;
pub mod grpc;
pub mod store;
