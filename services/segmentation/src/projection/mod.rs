//! The projection of the profiles change feed: per customer, orders, returns, visits and the
//! aggregates over them.

pub mod domain;
pub mod store;
