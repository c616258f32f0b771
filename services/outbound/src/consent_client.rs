//! The consent service as outbound calls it: whether subjects may be sent a purpose's
//! messages, what a purpose is, and recording a withdrawal.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::consent::v1 as pb;
use ecrm_proto::ecrm::consent::v1::consents_client::ConsentsClient;
use ecrm_proto::ecrm::consent::v1::purposes_client::PurposesClient;
use tonic::Code;
use uuid::Uuid;

use crate::templates::domain::Channel;

/// The audience of consent's tokens.
const CONSENT: &str = "consent";
/// Most subjects one `CheckConsent` may name.
const MAX_CHECK: usize = 10_000;
/// How long one call may take before consent counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Where consent's ledger says a one-click withdrawal was collected. Consent takes a-z, 0-9,
/// '_', '-' and '.' only.
pub const ONE_CLICK_COLLECTION_POINT: &str = "one-click-unsubscribe";

/// Consent's channel for an outbound channel: webhooks reach apps, consent's push channel.
pub fn consent_channel(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Email => pb::Channel::Email,
        Channel::Sms => pb::Channel::Sms,
        Channel::Webhook => pb::Channel::Push,
    }
}

/// Whether a subject may be sent the purpose's messages on the channel, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentVerdict {
    pub allowed: bool,
    pub reason: pb::Reason,
}

/// Consent gave no answer: unreachable, out of time, our token refused, or the question
/// refused (an unknown purpose, a channel not of the purpose): `status` says which.
#[derive(Debug, thiserror::Error)]
#[error("the consent service did not answer: {:?}", .status.code())]
pub struct ConsentUnavailable {
    pub status: tonic::Status,
}

#[derive(Debug, thiserror::Error)]
pub enum WithdrawError {
    /// Consent answered and will not record it as asked (the purpose does not exist, rests on
    /// no consent, or lacks the channel): asking again cannot help.
    #[error("the consent service refused the withdrawal: {:?}: {}", .0.code(), .0.message())]
    Refused(tonic::Status),
    /// Consent may record it later: try again.
    #[error(transparent)]
    Unavailable(#[from] ConsentUnavailable),
}

fn unavailable(status: tonic::Status) -> ConsentUnavailable {
    ConsentUnavailable { status }
}

/// Consent's answers that asking again cannot change. A lost or refused token is retried:
/// its cause (identity down, a missing scope) is fixed outside the request.
fn is_refusal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::AlreadyExists
    )
}

/// A client of consent's `Consents` and `Purposes`, calling with the service's own tokens.
#[derive(Clone)]
pub struct ConsentClient {
    channel: tonic::transport::Channel,
    tokens: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for ConsentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentClient").finish_non_exhaustive()
    }
}

impl ConsentClient {
    /// Calls consent on `channel` with tokens from `tokens` (scopes `consent.read` and
    /// `consent.write`).
    pub fn new(channel: tonic::transport::Channel, tokens: Arc<dyn TokenSource>) -> Self {
        Self { channel, tokens }
    }

    async fn token(&self, scope: &str) -> Result<String, ConsentUnavailable> {
        self.tokens
            .token(CONSENT, &[scope.to_owned()])
            .await
            .map_err(unavailable)
    }

    /// `call`, unless it takes longer than [`CALL_TIMEOUT`].
    async fn timed<T>(
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(answer) => answer.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded(
                "the consent service did not answer in time",
            )),
        }
    }

    /// `CheckConsent` for `subjects` (any number: asked 10,000 at a time), each subject's
    /// verdict. Needs `consent.read`.
    pub async fn check(
        &self,
        purpose: &str,
        channel: Channel,
        subjects: &[Uuid],
    ) -> Result<HashMap<Uuid, ConsentVerdict>, ConsentUnavailable> {
        let mut verdicts = HashMap::with_capacity(subjects.len());
        if subjects.is_empty() {
            return Ok(verdicts);
        }
        let token = self.token("consent.read").await?;
        let mut client = ConsentsClient::new(self.channel.clone());
        for chunk in subjects.chunks(MAX_CHECK) {
            let request = bearer_request(
                &token,
                pb::CheckConsentRequest {
                    purpose_key: purpose.to_owned(),
                    channel: consent_channel(channel).into(),
                    subject_ids: chunk.iter().map(Uuid::to_string).collect(),
                },
            )
            .map_err(unavailable)?;
            let decisions = Self::timed(client.check_consent(request))
                .await
                .map_err(unavailable)?
                .decisions;
            // Answered in the order asked; a subject merged into another is answered for by
            // the survivor, under the id asked.
            if decisions.len() != chunk.len() {
                return Err(unavailable(tonic::Status::internal(
                    "consent answered for other subjects than asked",
                )));
            }
            for (subject, decision) in chunk.iter().zip(decisions) {
                verdicts.insert(
                    *subject,
                    ConsentVerdict {
                        allowed: decision.allowed,
                        reason: decision.reason(),
                    },
                );
            }
        }
        Ok(verdicts)
    }

    /// Records in consent's ledger that `subject` withdrew `purpose` on `channel` by a
    /// one-click unsubscribe ([`ONE_CLICK_COLLECTION_POINT`]). Needs `consent.write`.
    pub async fn withdraw(
        &self,
        subject: Uuid,
        purpose: &str,
        channel: Channel,
        evidence: pb::Evidence,
    ) -> Result<(), WithdrawError> {
        let token = self.token("consent.write").await?;
        let request = bearer_request(
            &token,
            pb::RecordConsentRequest {
                subject_id: subject.to_string(),
                purpose_key: purpose.to_owned(),
                decision: pb::Decision::Withdrawn.into(),
                channel: consent_channel(channel).into(),
                collection_point: ONE_CLICK_COLLECTION_POINT.to_owned(),
                notice_version: String::new(),
                evidence: Some(evidence),
                expires_at: None,
            },
        )
        .map_err(unavailable)?;
        match Self::timed(ConsentsClient::new(self.channel.clone()).record_consent(request)).await {
            Ok(_) => Ok(()),
            Err(status) if is_refusal(status.code()) => Err(WithdrawError::Refused(status)),
            Err(status) => Err(unavailable(status).into()),
        }
    }

    /// `GetPurpose`: the purpose's lawful basis, channels and the rest; `None` when consent
    /// defines no such purpose. Needs `consent.read`.
    pub async fn purpose(&self, key: &str) -> Result<Option<pb::Purpose>, ConsentUnavailable> {
        let token = self.token("consent.read").await?;
        let request = bearer_request(
            &token,
            pb::GetPurposeRequest {
                key: key.to_owned(),
            },
        )
        .map_err(unavailable)?;
        match Self::timed(PurposesClient::new(self.channel.clone()).get_purpose(request)).await {
            Ok(answer) => Ok(answer.purpose),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(unavailable(status)),
        }
    }
}
