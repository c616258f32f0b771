//! One-click unsubscribe (RFC 8058): the links put in marketing messages, the endpoint they
//! point at, and the withdrawals it keeps until consent's ledger holds them.

pub mod config;
pub mod domain;
pub mod http;
pub mod store;
pub mod token;

pub use config::{ForwardRetry, UnsubscribeConfig};
pub use store::pending_withdrawals;
pub use token::UnsubscribeLinks;
