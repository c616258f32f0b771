//! The value a channel is called with. Only the gate builds one, so a message reaches a
//! provider only after every check of the gate passed for it, at the moment of sending.

use uuid::Uuid;

use crate::templates::domain::Channel;

/// A message the gate let through: rendered, addressed, and nothing more to check.
#[derive(Debug, Clone)]
pub struct Cleared {
    message_id: Uuid,
    subject_id: Uuid,
    channel: Channel,
    purpose: String,
    address: String,
    subject: String,
    body: String,
    unsubscribe_url: Option<String>,
}

/// What the gate fills in; private to the gate, so nothing else can make a [`Cleared`].
pub(in crate::gate) struct Parts {
    pub message_id: Uuid,
    pub subject_id: Uuid,
    pub channel: Channel,
    pub purpose: String,
    pub address: String,
    pub subject: String,
    pub body: String,
    pub unsubscribe_url: Option<String>,
}

impl Cleared {
    pub(in crate::gate) fn new(parts: Parts) -> Self {
        Self {
            message_id: parts.message_id,
            subject_id: parts.subject_id,
            channel: parts.channel,
            purpose: parts.purpose,
            address: parts.address,
            subject: parts.subject,
            body: parts.body,
            unsubscribe_url: parts.unsubscribe_url,
        }
    }

    /// A cleared message for the delivery tests, which test the channels and not the gate.
    #[cfg(test)]
    pub(crate) fn for_channel_tests(
        channel: Channel,
        address: &str,
        subject: &str,
        body: &str,
        unsubscribe_url: Option<&str>,
    ) -> Self {
        Self::new(Parts {
            message_id: Uuid::now_v7(),
            subject_id: Uuid::now_v7(),
            channel,
            purpose: "test".to_owned(),
            address: address.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            unsubscribe_url: unsubscribe_url.map(str::to_owned),
        })
    }

    /// Also the message's stable id towards providers (the mail's Message-ID, the
    /// Idempotency-Key of HTTP calls), so a provider can drop a repeat.
    pub fn message_id(&self) -> Uuid {
        self.message_id
    }

    pub fn subject_id(&self) -> Uuid {
        self.subject_id
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The purpose key the message is sent for.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// Email: the address; SMS: the E.164 number; webhook: the subject id.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The rendered subject line (email), empty otherwise.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The rendered body: HTML for email, text otherwise.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The one-click unsubscribe URL of a marketing message; None for a transactional one.
    pub fn unsubscribe_url(&self) -> Option<&str> {
        self.unsubscribe_url.as_deref()
    }
}
