//! The projection of the profiles change feed: per customer, orders, returns, visits and the
//! aggregates over them; the profile attributes rules read; the products and survey scores KPIs
//! read; and, from the consent ledger, who objected to profiling.

pub mod attributes;
pub mod domain;
pub mod facts;
pub mod objections;
pub mod store;
