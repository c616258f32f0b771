//! Sending a requester's verification code: the outbound service's to deliver, as a
//! transactional email to the address profiles holds for the subject.

use std::sync::Arc;

use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::messages_client::MessagesClient;
use tonic::transport::Channel;

const OUTBOUND: &str = "outbound";
const SCOPE: &str = "outbound.send";
/// The longest part of outbound's answer kept on a request.
const MAX_ERROR_CHARS: usize = 500;

/// A transactional email to send.
pub struct Transactional {
    pub subject_id: String,
    pub template_key: String,
    pub purpose_key: String,
    /// Holds the code: never logged, never kept.
    pub variables_json: String,
    pub idempotency_key: String,
}

impl std::fmt::Debug for Transactional {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactional")
            .field("template_key", &self.template_key)
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct OutboundMessages {
    outbound: Channel,
    tokens: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for OutboundMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundMessages").finish_non_exhaustive()
    }
}

impl OutboundMessages {
    pub fn new(outbound: Channel, tokens: Arc<dyn TokenSource>) -> Self {
        Self { outbound, tokens }
    }

    /// Queues the email at outbound; its message id, or why outbound did not take it, in
    /// words fit to keep on the request (outbound's answers name no personal data).
    pub async fn send_email(&self, message: Transactional) -> Result<String, String> {
        let token = self
            .tokens
            .token(OUTBOUND, &[SCOPE.to_owned()])
            .await
            .map_err(|status| {
                format!(
                    "no token for the outbound service: {}",
                    shorten(status.message())
                )
            })?;
        let request = bearer_request(
            &token,
            pb::SendTransactionalRequest {
                subject_id: message.subject_id,
                channel: pb::Channel::Email.into(),
                template_key: message.template_key,
                locale: String::new(),
                variables_json: message.variables_json,
                purpose_key: message.purpose_key,
                idempotency_key: message.idempotency_key,
            },
        )
        .map_err(|status| format!("cannot call the outbound service: {}", status.message()))?;
        match MessagesClient::new(self.outbound.clone())
            .send_transactional(request)
            .await
        {
            Ok(response) => Ok(response
                .into_inner()
                .message
                .map(|m| m.message_id)
                .unwrap_or_default()),
            Err(status) => Err(describe(&status)),
        }
    }
}

fn describe(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
            "the outbound service is unavailable".to_owned()
        }
        code => format!(
            "the outbound service refused the message ({code:?}): {}",
            shorten(status.message())
        ),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}
