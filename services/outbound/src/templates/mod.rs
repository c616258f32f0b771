//! Message templates: saved per key, channel and locale, checked when saved (syntax, declared
//! variables), rendered with minijinja (HTML escaping for email bodies).

pub mod domain;
pub mod grpc;
pub mod render;
pub mod store;
