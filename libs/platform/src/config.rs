//! Configuration every service shares, from flags or environment variables, checked before
//! anything starts.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use crate::db::{BLOCKING_THREAD_BUDGET, DatabaseUrl, PoolOptions};
use crate::tls::TlsConfig;

/// Flags and environment variables of every service binary. Flatten it into the service's own
/// `clap::Parser`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlatformConfig {
    /// Address to serve gRPC on; defaults to 127.0.0.1 and the service's own port.
    #[arg(long, env = "ECRM_LISTEN")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    #[command(flatten)]
    pub shutdown: ShutdownConfig,
    #[command(flatten)]
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL the service connects with, as its own role. Its search_path is pinned
    /// to the service's schema.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub url: DatabaseUrl,
    /// Optional administrator URL used only at start to create the service's role (the user
    /// and password of --database-url) and schema when they are missing.
    #[arg(
        long = "database-admin-url",
        env = "ECRM_DATABASE_ADMIN_URL",
        hide_env_values = true
    )]
    pub admin_url: Option<DatabaseUrl>,
    /// Most database connections open at once.
    #[arg(long = "db-pool-size", env = "ECRM_DB_POOL_SIZE", default_value_t = 10)]
    pub pool_size: u32,
    /// How long a call waits for a database connection before failing UNAVAILABLE.
    #[arg(long = "db-connect-timeout", env = "ECRM_DB_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
}

impl DatabaseConfig {
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            max_size: self.pool_size,
            connect_timeout: self.connect_timeout,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryConfig {
    /// Log line format.
    #[arg(
        long = "log-format",
        env = "ECRM_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Which logs to write, in tracing's filter syntax, e.g. "info,ecrm_profiles=debug".
    #[arg(long = "log-filter", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// OTLP/gRPC endpoint to export traces to, e.g. http://otel-collector:4317. No export
    /// when unset.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<Url>,
    /// The service name in traces.
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            service_name: None,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ShutdownConfig {
    /// After SIGTERM, how long health reports NOT_SERVING while calls are still accepted, so
    /// load balancers stop routing here first.
    #[arg(long = "shutdown-grace", env = "ECRM_SHUTDOWN_GRACE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Then, how long in-flight calls may take to finish before they are cut.
    #[arg(long = "drain-timeout", env = "ECRM_DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Parses a flag whose value is secret (a key, a password) without ever echoing it: clap's own
/// errors quote the value they refuse.
#[derive(Debug)]
pub struct SecretParser<T>(std::marker::PhantomData<fn() -> T>);

impl<T> SecretParser<T> {
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T> Default for SecretParser<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for SecretParser<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> clap::builder::TypedValueParser for SecretParser<T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg.map_or_else(|| "a secret".to_owned(), ToString::to_string);
        let refuse = |reason: &dyn std::fmt::Display| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name}: {reason} (the value is not shown)\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refuse(&"not UTF-8"))?;
        text.parse().map_err(|error: T::Err| refuse(&error))
    }
}

/// A configuration value that cannot work, named by its flag and environment variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {flag} ({env}): {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub env: &'static str,
    pub reason: String,
}

/// The gRPC endpoint of another service, from the value of `flag`; the error shows `example`.
pub fn service_endpoint(
    url: &str,
    flag: &'static str,
    env: &'static str,
    example: &str,
) -> Result<tonic::transport::Endpoint, ConfigError> {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .map(|e| e.connect_timeout(Duration::from_secs(5)))
        .map_err(|_| ConfigError {
            flag,
            env,
            reason: format!("not a URL such as {example}"),
        })
}

/// [`service_endpoint`] for a flag that may be unset: `None` when it is.
pub fn optional_service_endpoint(
    url: Option<&str>,
    flag: &'static str,
    env: &'static str,
    example: &str,
) -> Result<Option<tonic::transport::Endpoint>, ConfigError> {
    url.map(|url| service_endpoint(url, flag, env, example))
        .transpose()
}

impl PlatformConfig {
    /// Checks what clap's per-value parsing cannot: limits and agreement between values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.telemetry.validate()
    }
}

impl DatabaseConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max_pool = BLOCKING_THREAD_BUDGET / 2;
        if !(1..=max_pool).contains(&self.pool_size) {
            return Err(ConfigError {
                flag: "--db-pool-size",
                env: "ECRM_DB_POOL_SIZE",
                reason: format!("must be between 1 and {max_pool}"),
            });
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError {
                flag: "--db-connect-timeout",
                env: "ECRM_DB_CONNECT_TIMEOUT",
                reason: "must be more than zero".to_owned(),
            });
        }
        if let Some(admin) = &self.admin_url {
            let url = &self.url;
            if (admin.host(), admin.port(), admin.database())
                != (url.host(), url.port(), url.database())
            {
                return Err(ConfigError {
                    flag: "--database-admin-url",
                    env: "ECRM_DATABASE_ADMIN_URL",
                    reason: "must name the same server and database as --database-url".to_owned(),
                });
            }
            if url.username().is_empty() {
                return Err(ConfigError {
                    flag: "--database-url",
                    env: "DATABASE_URL",
                    reason: "must name the service's user when an admin url is given".to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl TelemetryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Err(error) = self.log_filter.parse::<tracing_subscriber::EnvFilter>() {
            return Err(ConfigError {
                flag: "--log-filter",
                env: "RUST_LOG",
                reason: error.to_string(),
            });
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !matches!(endpoint.scheme(), "http" | "https")
        {
            return Err(ConfigError {
                flag: "--otlp-endpoint",
                env: "OTEL_EXPORTER_OTLP_ENDPOINT",
                reason: "must be an http or https url".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        platform: PlatformConfig,
    }

    fn parse(args: &[&str]) -> Result<PlatformConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("svc").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.platform.validate().map_err(|e| e.to_string())?;
        Ok(cli.platform)
    }

    #[test]
    fn flags_parse_with_defaults() {
        let config = parse(&["--database-url", "postgres://svc@localhost/ecrm"]).unwrap();
        assert_eq!(config.database.pool_size, 10);
        assert_eq!(config.shutdown.grace, Duration::from_secs(2));
        assert_eq!(config.telemetry.log_format, LogFormat::Text);
    }

    #[test]
    fn an_oversized_pool_is_refused_naming_the_flag() {
        let error = parse(&[
            "--database-url",
            "postgres://svc@localhost/ecrm",
            "--db-pool-size",
            "1000",
        ])
        .unwrap_err();
        assert!(error.contains("--db-pool-size"), "{error}");
    }

    #[test]
    fn an_admin_url_for_another_database_is_refused() {
        let error = parse(&[
            "--database-url",
            "postgres://svc@localhost/ecrm",
            "--database-admin-url",
            "postgres://postgres@localhost/other",
        ])
        .unwrap_err();
        assert!(error.contains("--database-admin-url"), "{error}");
    }

    #[test]
    fn a_bad_database_url_is_refused_before_start() {
        let error = parse(&["--database-url", "mysql://x@y/z"]).unwrap_err();
        assert!(error.contains("postgres"), "{error}");
    }
}
