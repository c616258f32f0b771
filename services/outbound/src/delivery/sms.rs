//! SMS: one JSON POST to the provider per message.

use ecrm_crypto::Secret;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

use super::config::DeliveryConfig;
use super::{Outcome, http};
use crate::error::OutboundError;
use crate::gate::Cleared;
use crate::suppressions::address::normalise_phone;

pub(super) struct Sms {
    client: reqwest::Client,
    url: url::Url,
    token: Secret<String>,
    sender: String,
}

impl Sms {
    /// The channel when --sms-url is set, checking the flags that go with it.
    pub(super) fn from_config(
        config: &DeliveryConfig,
        client: Option<reqwest::Client>,
    ) -> Result<Option<Self>, OutboundError> {
        let (Some(url), Some(client)) = (&config.sms_url, client) else {
            return Ok(None);
        };
        let url = http::parse_url("--sms-url", url)?;
        let token = config
            .sms_token
            .clone()
            .filter(|token| !token.expose().is_empty())
            .ok_or_else(|| OutboundError::invalid("--sms-token", "required with --sms-url"))?;
        let sender = config
            .sms_sender
            .clone()
            .filter(|sender| !sender.trim().is_empty())
            .ok_or_else(|| OutboundError::invalid("--sms-sender", "required with --sms-url"))?;
        Ok(Some(Self {
            client,
            url,
            token,
            sender,
        }))
    }

    pub(super) async fn send(&self, message: &Cleared) -> Outcome {
        let Some(to) = normalise_phone(message.address()) else {
            return Outcome::Permanent {
                detail: "not a phone number in international form".to_owned(),
                suppress: true,
            };
        };
        let body = serde_json::json!({
            "from": self.sender,
            "to": to,
            "text": message.body(),
            "message_id": message.message_id(),
        });
        let request = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()))
            .header("Idempotency-Key", message.message_id().to_string())
            .json(&body);
        http::send(request, number_refused).await
    }
}

/// Whether a refusal says the number is bad. 400, 410 and 422 are how providers refuse a
/// number; the other 4xx (a bad token, a wrong URL) say nothing about it.
fn number_refused(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 410 | 422)
}
