//! Loyalty tiers: programs of tiers by orders or spend over a rolling window, and each
//! customer's tier in them, replayed from the projection's orders whenever it is asked.

pub mod domain;
pub mod grpc;
pub mod policy;
pub mod store;
