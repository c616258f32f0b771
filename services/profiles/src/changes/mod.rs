//! The change feed: every change to a profile, in commit order, resumable by cursor.

pub mod domain;
pub mod grpc;
pub mod store;
