//! What every eCRM service stands on: configuration, telemetry, its PostgreSQL schema and
//! migrations, error mapping, and serving gRPC with health, reflection and graceful shutdown.

pub mod auth;
pub mod config;
pub mod consent_feed;
pub mod db;
pub mod feed;
pub mod feed_follower;
pub mod money;
pub mod paging;
pub mod privacy;
pub mod profiles_feed;
pub mod propagation;
pub mod rate_limit;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod time;
pub mod tls;

pub use config::PlatformConfig;
pub use db::{DatabaseUrl, Db, DbError};
pub use server::{RunningServer, ServiceRoutes};
pub use service::{ServiceContext, ServiceDef, StartError, prepare_database, serve};
pub use telemetry::Telemetry;
