//! Profile attributes: the standard ones, custom ones typed against declared definitions, and
//! the history of every value.

pub mod domain;
pub mod grpc;
pub mod store;
