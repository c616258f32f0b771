//! Processing purposes, each with its lawful basis, channels and data categories, and the
//! notices shown when asking for consent to them.

pub mod domain;
pub mod grpc;
pub mod store;
