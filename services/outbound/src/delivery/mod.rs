//! The channels: a cleared message handed to its provider (an SMTP relay, an SMS provider, a
//! webhook receiver), and what came of it, in the terms the queue worker acts on.

mod config;
mod email;
mod http;
mod sms;
mod smtp;
mod webhook;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use config::DeliveryConfig;
pub use webhook::{SIGNATURE_HEADER, verify_webhook_signature};

use crate::error::OutboundError;
use crate::gate::Cleared;
use crate::templates::domain::Channel;

/// What came of one delivery, for the queue worker to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the provider; its id when it gave one (SMTP: the queue id of the reply,
    /// HTTP: the "id" of the JSON answer).
    Delivered { provider_id: Option<String> },
    /// Worth retrying later (connection refused or reset, timeout, HTTP 408 or 5xx): the
    /// message uses an attempt.
    Transient { detail: String },
    /// The provider asks to slow down (HTTP 429, any SMTP 4xx reply): pause the whole channel,
    /// for `retry_after` when the provider said; no attempt used.
    RateLimited {
        retry_after: Option<Duration>,
        detail: String,
    },
    /// Will never work: the message fails. `suppress` when the address itself is bad, so the
    /// worker suppresses it.
    Permanent { detail: String, suppress: bool },
    /// The channel has no provider configured.
    NotConfigured,
}

/// The configured channels; cheap to clone, built once.
#[derive(Clone)]
pub struct Channels {
    email: Option<Arc<email::Email>>,
    sms: Option<Arc<sms::Sms>>,
    webhook: Option<Arc<webhook::Webhook>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("email", &self.email.is_some())
            .field("sms", &self.sms.is_some())
            .field("webhook", &self.webhook.is_some())
            .finish()
    }
}

impl Channels {
    /// The channels `config` sets up; a bad value is named by its flag. Nothing is
    /// connected yet: each provider is first reached by the first message sent to it.
    pub fn from_config(config: &DeliveryConfig) -> Result<Self, OutboundError> {
        let needs_http = config.sms_url.is_some() || config.webhook_url.is_some();
        let client = if needs_http {
            Some(http::client(Duration::from_secs(config.http_timeout_secs))?)
        } else {
            None
        };
        Ok(Self {
            email: email::Email::from_config(config)?.map(Arc::new),
            sms: sms::Sms::from_config(config, client.clone())?.map(Arc::new),
            webhook: webhook::Webhook::from_config(config, client)?.map(Arc::new),
        })
    }

    /// Whether `channel` has a provider.
    pub fn configured(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email.is_some(),
            Channel::Sms => self.sms.is_some(),
            Channel::Webhook => self.webhook.is_some(),
        }
    }

    /// Hands `message` to the provider of its channel, once: retrying is the worker's call.
    #[tracing::instrument(skip_all, fields(message.id = %message.message_id(), channel = message.channel().as_str()))]
    pub async fn deliver(&self, message: &Cleared) -> Outcome {
        let outcome = match message.channel() {
            Channel::Email => match &self.email {
                Some(email) => email.send(message).await,
                None => Outcome::NotConfigured,
            },
            Channel::Sms => match &self.sms {
                Some(sms) => sms.send(message).await,
                None => Outcome::NotConfigured,
            },
            Channel::Webhook => match &self.webhook {
                Some(webhook) => webhook.send(message).await,
                None => Outcome::NotConfigured,
            },
        };
        match &outcome {
            Outcome::Delivered { .. } => tracing::debug!("delivered"),
            Outcome::Transient { detail } => tracing::info!(%detail, "delivery failed, retryable"),
            Outcome::RateLimited {
                retry_after,
                detail,
            } => {
                tracing::info!(%detail, retry_after = ?retry_after, "provider rate limited")
            }
            Outcome::Permanent { detail, suppress } => {
                tracing::info!(%detail, suppress, "delivery refused")
            }
            Outcome::NotConfigured => tracing::info!("channel not configured"),
        }
        outcome
    }
}
