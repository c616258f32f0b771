//! Identifiers of customers: normalised, found through blind indexes, stored sealed.

pub mod domain;
pub mod store;
