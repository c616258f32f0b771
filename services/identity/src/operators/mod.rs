//! Operators: the people who run the suite.

pub mod domain;
pub mod grpc;
pub mod store;
