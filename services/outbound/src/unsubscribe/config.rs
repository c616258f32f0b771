//! The settings of the unsubscribe endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

#[derive(Debug, Clone, clap::Args)]
pub struct UnsubscribeConfig {
    /// Where the unsubscribe pages are served over HTTP (behind the public TLS endpoint in
    /// production).
    #[arg(
        long = "http-addr",
        env = "ECRM_OUTBOUND_HTTP_ADDR",
        default_value = "127.0.0.1:8055"
    )]
    pub http_addr: SocketAddr,
    /// The public base of the unsubscribe links put in messages, http(s), e.g.
    /// https://mail.example.com: links are `<public-url>/u/<token>`. Use https in production.
    #[arg(
        long = "public-url",
        env = "ECRM_OUTBOUND_PUBLIC_URL",
        default_value = "http://127.0.0.1:8055",
        value_parser = parse_public_url
    )]
    pub public_url: String,
    /// How withdrawals consent could not take at once are retried.
    #[arg(skip = ForwardRetry::default())]
    pub retry: ForwardRetry,
}

/// How often the forwarder looks for withdrawals to forward, and how long it waits before
/// trying one again: `first`, doubling each time up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardRetry {
    pub poll: Duration,
    pub first: Duration,
    pub max: Duration,
}

impl Default for ForwardRetry {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(5),
            first: Duration::from_secs(5),
            max: Duration::from_secs(15 * 60),
        }
    }
}

impl ForwardRetry {
    /// The wait after `attempts` failed attempts.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        self.first
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(self.max)
    }
}

impl Default for UnsubscribeConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8055)),
            public_url: "http://127.0.0.1:8055".to_owned(),
            retry: ForwardRetry::default(),
        }
    }
}

/// An http(s) URL with a host and no query, fragment or credentials, without its trailing
/// slash: what `/u/<token>` is appended to.
pub fn parse_public_url(value: &str) -> Result<String, String> {
    let url = Url::parse(value.trim())
        .map_err(|_| format!("{value:?} is not a URL such as https://mail.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http(s) URL (https in production)".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query or fragment".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must carry no credentials".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        unsubscribe: UnsubscribeConfig,
    }

    #[test]
    fn the_defaults_serve_and_link_on_the_loopback() {
        let cli = Cli::try_parse_from(["outbound"]).unwrap();
        assert_eq!(cli.unsubscribe.http_addr.to_string(), "127.0.0.1:8055");
        assert_eq!(cli.unsubscribe.public_url, "http://127.0.0.1:8055");
    }

    #[test]
    fn the_public_url_must_be_http_and_loses_its_trailing_slash() {
        let cli = Cli::try_parse_from(["outbound", "--public-url", "https://mail.example.com/x/"])
            .unwrap();
        assert_eq!(cli.unsubscribe.public_url, "https://mail.example.com/x");
        for bad in [
            "ftp://mail.example.com",
            "mail.example.com",
            "https://mail.example.com/?a=1",
            "https://mail.example.com/#top",
            "https://user:pw@mail.example.com",
            "javascript:alert(1)",
        ] {
            assert!(
                Cli::try_parse_from(["outbound", "--public-url", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Cli::try_parse_from(["outbound", "--http-addr", "localhost"]).is_err());
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_the_limit() {
        let retry = ForwardRetry::default();
        assert_eq!(retry.backoff(1), Duration::from_secs(5));
        assert_eq!(retry.backoff(2), Duration::from_secs(10));
        assert_eq!(retry.backoff(3), Duration::from_secs(20));
        assert_eq!(retry.backoff(1_000), Duration::from_secs(15 * 60));
    }
}
