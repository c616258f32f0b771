//! Test support for every eCRM crate: a real PostgreSQL, a fresh database per test cloned from
//! a template migrated once, a check that every migration's `down.sql` reverts its `up.sql`,
//! services started in-process on an ephemeral port, and real SMTP and HTTP servers that record
//! what the code under test sends them ([`smtp`], [`http_sink`]).
//!
//! Which PostgreSQL: `ECRM_TEST_DATABASE_URL` (a superuser URL) when set; else the server on
//! 127.0.0.1:5432 as `postgres` when it answers; else a private cluster started from the
//! machine's PostgreSQL binaries in the temporary folder, shared by every test process and left
//! running for the next run.

mod auth;
mod database;
mod error;
pub mod http_sink;
mod personal_data;
mod pki;
mod plan;
mod server;
mod service;
pub mod smtp;
mod snapshot;

pub use auth::{TEST_ISSUER, TestAuth, TokenSpec};
pub use database::{TEST_ROLE_PASSWORD, TestDatabase, with_server_lock};
pub use error::Error;
pub use http_sink::{HttpSink, ReceivedRequest};
pub use personal_data::NoPersonalData;
pub use pki::{Issued, IssuedFiles, TestCa};
pub use plan::assert_feed_reads_in_index_order;
pub use server::PgServer;
pub use service::{TestServer, start_server, start_service};
pub use smtp::{DropAt, ReceivedMail, SmtpSink};
pub use snapshot::{SchemaSnapshot, assert_migrations_revert, check_migrations_revert};
