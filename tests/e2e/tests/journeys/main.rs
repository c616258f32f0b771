//! Journeys across the five services, each on its own suite: run side by side in this one
//! test binary.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, helpers included"
)]

#[path = "../support/mod.rs"]
mod support;

mod authorization;
mod customer;
mod garbage;
mod mutual_tls;
mod partner;
mod replicas;
