//! Webhooks: one signed JSON POST per message, and the check a receiver does on it.

use std::time::{Duration, SystemTime};

use ecrm_crypto::Secret;
use reqwest::header::CONTENT_TYPE;
use ring::hmac;

use super::config::DeliveryConfig;
use super::{Outcome, http};
use crate::error::OutboundError;
use crate::gate::Cleared;

/// The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "Ecrm-Signature";

pub(super) struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    key: hmac::Key,
}

impl Webhook {
    /// The channel when --webhook-url is set, checking the secret that goes with it.
    pub(super) fn from_config(
        config: &DeliveryConfig,
        client: Option<reqwest::Client>,
    ) -> Result<Option<Self>, OutboundError> {
        let (Some(url), Some(client)) = (&config.webhook_url, client) else {
            return Ok(None);
        };
        let url = http::parse_url("--webhook-url", url)?;
        let secret: &Secret<String> = config.webhook_secret.as_ref().ok_or_else(|| {
            OutboundError::invalid("--webhook-secret", "required with --webhook-url")
        })?;
        if secret.expose().len() < 16 {
            return Err(OutboundError::invalid(
                "--webhook-secret",
                "at least 16 characters",
            ));
        }
        Ok(Some(Self {
            client,
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes()),
        }))
    }

    pub(super) async fn send(&self, message: &Cleared) -> Outcome {
        let body = serde_json::json!({
            "message_id": message.message_id(),
            "subject_id": message.subject_id(),
            "purpose": message.purpose(),
            "subject": message.subject(),
            "body": message.body(),
            "sent_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        let body = body.to_string().into_bytes();
        let signature = sign(&self.key, unix_seconds(SystemTime::now()), &body);
        let request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", message.message_id().to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body);
        // A receiver's refusal is about the call, never about an address to suppress.
        http::send(request, |_| false).await
    }
}

/// The `Ecrm-Signature` value of `body` sent at `t`.
fn sign(key: &hmac::Key, t: u64, body: &[u8]) -> String {
    let tag = hmac::sign(key, &signed_payload(t, body));
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

fn signed_payload(t: u64, body: &[u8]) -> Vec<u8> {
    let mut payload = format!("{t}.").into_bytes();
    payload.extend_from_slice(body);
    payload
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// What a receiver checks of a webhook call: `header` (the `Ecrm-Signature` value) carries a
/// `v1` HMAC-SHA256 of `"<t>.<body>"` under `secret`, and `t` is within `tolerance` of `now`,
/// so a call replayed later is refused. `body` is the raw body, as received. Several `v1`
/// entries are allowed (one per secret while rotating); one match suffices.
pub fn verify_webhook_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> bool {
    let mut t = None;
    let mut tags = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) if t.is_none() => t = value.parse::<u64>().ok(),
            Some(("t", _)) => return false,
            Some(("v1", value)) => tags.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(t) = t else {
        return false;
    };
    if unix_seconds(now).abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let payload = signed_payload(t, body);
    tags.iter()
        .any(|tag| hmac::verify(&key, &payload, tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-0123456789abcdef";

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn header(t: u64, body: &[u8]) -> String {
        sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), t, body)
    }

    #[test]
    fn the_signature_is_the_hmac_of_time_and_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec-0123456789abcdef
        assert_eq!(
            header(1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=d77c78ac4da074c56908b55eac30358b2a7bfc573be4c76819af5102e8dcf939"
        );
    }

    #[test]
    fn a_signature_verifies_within_the_tolerance_only() {
        let body = br#"{"message_id":"m"}"#;
        let signed = header(1_700_000_000, body);
        let minute = Duration::from_secs(60);
        assert!(verify_webhook_signature(
            SECRET,
            &signed,
            body,
            at(1_700_000_000),
            minute
        ));
        assert!(verify_webhook_signature(
            SECRET,
            &signed,
            body,
            at(1_700_000_060),
            minute
        ));
        assert!(verify_webhook_signature(
            SECRET,
            &signed,
            body,
            at(1_699_999_940),
            minute
        ));
        assert!(!verify_webhook_signature(
            SECRET,
            &signed,
            body,
            at(1_700_000_061),
            minute
        ));
        assert!(!verify_webhook_signature(
            SECRET,
            &signed,
            body,
            at(1_699_999_939),
            minute
        ));
    }

    #[test]
    fn a_changed_body_time_or_secret_fails() {
        let body = br#"{"message_id":"m"}"#;
        let now = at(1_700_000_000);
        let minute = Duration::from_secs(60);
        let signed = header(1_700_000_000, body);
        assert!(!verify_webhook_signature(
            SECRET,
            &signed,
            br#"{"message_id":"n"}"#,
            now,
            minute
        ));
        assert!(!verify_webhook_signature(
            b"another-secret-entirely",
            &signed,
            body,
            now,
            minute
        ));
        let moved = signed.replace("t=1700000000", "t=1700000001");
        assert!(!verify_webhook_signature(SECRET, &moved, body, now, minute));
        for junk in ["", "t=1700000000", "v1=00", "t=x,v1=00", "garbage"] {
            assert!(
                !verify_webhook_signature(SECRET, junk, body, now, minute),
                "{junk}"
            );
        }
        // Two timestamps: which one was signed is ambiguous.
        let twice = format!("t=1700000000,{signed}");
        assert!(!verify_webhook_signature(SECRET, &twice, body, now, minute));
    }

    #[test]
    fn any_one_of_several_v1_signatures_verifies() {
        let body = b"{}";
        let signed = header(1_700_000_000, body);
        let rotated = format!("{}, v1={}", signed.replace("v1=", "v1=00ff,v1="), "abcd");
        assert!(verify_webhook_signature(
            SECRET,
            &rotated,
            body,
            at(1_700_000_000),
            Duration::from_secs(5)
        ));
    }
}
