//! Messages: one to one subject on one channel. The table is at once the queue, the log of
//! what became of each message, and the guarantee that none is sent twice.

pub mod domain;
pub mod grpc;
pub mod store;
