//! What the HTTP channels share: the client, and reading a provider's answer as an outcome.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use super::Outcome;
use crate::error::OutboundError;

/// The most of a provider's answer read, for its id; a longer answer is not read further.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The client both HTTP channels use: TLS by rustls on ring, the system's roots, no redirect
/// followed (a provider that moved must be reconfigured, not guessed at), `timeout` per call.
pub(super) fn client(timeout: Duration) -> Result<reqwest::Client, OutboundError> {
    let invalid = |reason: String| OutboundError::invalid("--http-timeout-secs", reason);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|error| invalid(format!("cannot load the system's roots: {error}")))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(format!("cannot set up TLS: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("ecrm-outbound/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| invalid(format!("cannot build the HTTP client: {error}")))
}

/// A URL flag's value: absolute, http or https, with a host.
pub(super) fn parse_url(flag: &str, value: &str) -> Result<url::Url, OutboundError> {
    let url = url::Url::parse(value)
        .map_err(|error| OutboundError::invalid(flag, format!("not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(OutboundError::invalid(flag, "an http:// or https:// URL"));
    }
    Ok(url)
}

/// Sends `request` and reads the answer; `suppress` tells which refusals mean the address is bad.
pub(super) async fn send(request: RequestBuilder, suppress: fn(StatusCode) -> bool) -> Outcome {
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => return failed(&error),
    };
    let status = response.status();
    if !status.is_success() {
        return classify_refusal(status, response.headers(), SystemTime::now(), suppress);
    }
    let mut answer = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if answer.len() + chunk.len() <= MAX_ANSWER_BYTES => {
                answer.extend_from_slice(&chunk);
            }
            // The provider accepted the message: a lost or long answer costs only its id.
            Ok(Some(_)) | Err(_) => return Outcome::Delivered { provider_id: None },
            Ok(None) => break,
        }
    }
    Outcome::Delivered {
        provider_id: provider_id(&answer),
    }
}

/// A call that got no answer: worth another try. The detail leaves out the URL.
fn failed(error: &reqwest::Error) -> Outcome {
    let detail = if error.is_timeout() {
        "http call timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect to the provider".to_owned()
    } else {
        // reqwest's own message quotes the URL, which may hold a token: only its causes.
        let mut detail = "http call failed".to_owned();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            detail.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        detail
    };
    Outcome::Transient { detail }
}

/// A refusal, read from its status (and Retry-After when rate limited).
fn classify_refusal(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
    suppress: fn(StatusCode) -> bool,
) -> Outcome {
    let detail = format!("http {}", status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after(value, now));
        return Outcome::RateLimited {
            retry_after,
            detail,
        };
    }
    if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        return Outcome::Transient { detail };
    }
    if status.is_client_error() {
        return Outcome::Permanent {
            detail,
            suppress: suppress(status),
        };
    }
    // 1xx and 3xx: the endpoint is not a provider's API as configured.
    Outcome::Permanent {
        detail: format!(
            "{detail}: not an answer of the provider's API (redirects are not followed)"
        ),
        suppress: false,
    }
}

/// How long a `Retry-After` value asks to wait: seconds, or an HTTP date (a date past is no wait).
pub(super) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The provider's id of the message: the "id" of a JSON object, a string or a number.
fn provider_id(answer: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    match value.get("id")? {
        serde_json::Value::String(id) if !id.is_empty() => Some(id.clone()),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn never(_: StatusCode) -> bool {
        false
    }

    fn always(_: StatusCode) -> bool {
        true
    }

    fn refusal(status: u16, retry: Option<&str>, suppress: fn(StatusCode) -> bool) -> Outcome {
        let mut headers = HeaderMap::new();
        if let Some(retry) = retry {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        classify_refusal(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            now,
            suppress,
        )
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms HTTP still asks recipients to read.
        assert_eq!(
            retry_after("Sunday, 06-Nov-94 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sun Nov  6 08:50:07 1994", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for junk in ["", "-5", "1.5", "soon", "99999999999999999999999"] {
            assert_eq!(retry_after(junk, now), None, "{junk}");
        }
    }

    #[test]
    fn refusals_are_classified_by_status() {
        assert_eq!(
            refusal(429, Some("2"), never),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
                detail: "http 429".to_owned()
            }
        );
        assert_eq!(
            refusal(429, None, never),
            Outcome::RateLimited {
                retry_after: None,
                detail: "http 429".to_owned()
            }
        );
        assert_eq!(
            refusal(429, Some("later"), never),
            Outcome::RateLimited {
                retry_after: None,
                detail: "http 429".to_owned()
            }
        );
        for transient in [408, 500, 502, 503, 504] {
            assert_eq!(
                refusal(transient, None, always),
                Outcome::Transient {
                    detail: format!("http {transient}")
                }
            );
        }
        for permanent in [400, 401, 404, 410, 422] {
            assert_eq!(
                refusal(permanent, None, always),
                Outcome::Permanent {
                    detail: format!("http {permanent}"),
                    suppress: true
                }
            );
            assert!(matches!(
                refusal(permanent, None, never),
                Outcome::Permanent {
                    suppress: false,
                    ..
                }
            ));
        }
        assert!(matches!(
            refusal(301, None, always),
            Outcome::Permanent {
                suppress: false,
                ..
            }
        ));
    }

    #[test]
    fn the_provider_id_is_the_json_id() {
        assert_eq!(
            provider_id(br#"{"id":"SM123","status":"queued"}"#),
            Some("SM123".to_owned())
        );
        assert_eq!(provider_id(br#"{"id":42}"#), Some("42".to_owned()));
        for none in [
            &b""[..],
            b"OK",
            br#"{"status":"queued"}"#,
            br#"{"id":""}"#,
            b"[1]",
        ] {
            assert_eq!(provider_id(none), None);
        }
    }

    #[test]
    fn only_http_urls_are_provider_endpoints() {
        assert!(parse_url("--sms-url", "https://sms.example/v1/messages").is_ok());
        assert!(parse_url("--sms-url", "http://127.0.0.1:8080/sms").is_ok());
        for bad in [
            "",
            "sms.example/v1",
            "ftp://sms.example/",
            "mailto:a@b.example",
        ] {
            assert!(matches!(
                parse_url("--sms-url", bad),
                Err(OutboundError::InvalidArgument { field, .. }) if field == "--sms-url"
            ));
        }
    }
}
