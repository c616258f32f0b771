//! A private PostgreSQL cluster started from the machine's PostgreSQL server binaries.
//!
//! Used by `ecrm up` (a persistent cluster in `./.ecrm/pg`) and by the test harness when no
//! server is reachable (a throwaway cluster in a temporary folder). The API is synchronous:
//! async callers run it in `spawn_blocking`.
//!
//! PostgreSQL refuses to run as root, so when the current user is root every server command
//! runs through `runuser -u postgres --` with folders owned by that user.

mod binaries;
mod cluster;
mod error;
mod files;
mod process;
mod server_user;

pub use binaries::PgBinaries;
pub use cluster::{ClusterOptions, LocalCluster};
pub use error::Error;
pub use process::{process_is_alive, wait_for_exit};
