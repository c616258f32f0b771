//! Interactions and orders: what customers did, sealed with their key, kept for a retention
//! period per kind.

pub mod domain;
pub mod grpc;
pub mod store;
