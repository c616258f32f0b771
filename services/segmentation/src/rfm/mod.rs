//! RFM: recency, frequency and monetary scores over the projection, and the named segments
//! they map to.

pub mod domain;
pub mod grpc;
pub mod store;
