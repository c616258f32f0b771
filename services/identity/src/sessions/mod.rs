//! Sessions: a refresh token issued at login, exchanged later for tokens without the password.

pub mod domain;
pub mod store;
