//! Rule segments: named rules in the rule language, and who they hold, evaluated on the
//! projection's facts about a customer.

pub mod domain;
pub mod facts;
pub mod grpc;
pub mod maintain;
pub mod members;
pub mod store;
pub mod worker;

#[cfg(test)]
mod incremental_tests;
