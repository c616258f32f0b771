//! Following the profiles change feed: merges of subjects (the most restrictive decision wins)
//! and purchases (soft opt-in).

pub mod domain;
pub mod store;
pub mod worker;
