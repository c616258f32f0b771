//! Whether a purpose is marketing or transactional, from its lawful basis in the consent
//! service, remembered for a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ecrm_proto::ecrm::common::v1::LawfulBasis;

use crate::consent_client::{ConsentClient, consent_channel};
use crate::error::OutboundError;
use crate::templates::domain::Channel;

/// How long a purpose's kind is trusted before asking again.
const REMEMBERED_FOR: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurposeKind {
    /// A contract or a legal obligation: needs no marketing consent; no cap, no quiet hours,
    /// no unsubscribe link.
    Transactional,
    /// Consent, soft opt-in or legitimate interest (direct marketing, recital 47): the cap,
    /// quiet hours and a one-click unsubscribe link apply.
    Marketing,
}

impl PurposeKind {
    pub fn of(basis: LawfulBasis) -> Self {
        match basis {
            LawfulBasis::Contract
            | LawfulBasis::LegalObligation
            | LawfulBasis::VitalInterests
            | LawfulBasis::PublicTask => Self::Transactional,
            _ => Self::Marketing,
        }
    }
}

/// What outbound needs of a purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeFacts {
    pub kind: PurposeKind,
    /// Consent's channels of the purpose (`ecrm.consent.v1.Channel` values).
    channels: Vec<i32>,
}

impl PurposeFacts {
    /// Whether the purpose may use `channel` (webhooks are consent's PUSH).
    pub fn covers(&self, channel: Channel) -> bool {
        self.channels.contains(&i32::from(consent_channel(channel)))
    }
}

pub struct Purposes {
    consent: Option<ConsentClient>,
    known: Mutex<HashMap<String, (PurposeFacts, Instant)>>,
}

impl std::fmt::Debug for Purposes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Purposes").finish_non_exhaustive()
    }
}

impl Purposes {
    pub fn new(consent: Option<ConsentClient>) -> Self {
        Self {
            consent,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The consent service, or the error every send path gives without one: nothing is sent
    /// that cannot be checked.
    pub fn consent(&self) -> Result<&ConsentClient, OutboundError> {
        self.consent.as_ref().ok_or_else(|| {
            OutboundError::FailedPrecondition(
                "no consent service is configured (--consent-url): nothing can be sent".to_owned(),
            )
        })
    }

    /// The purpose's kind and channels; None when consent has no such purpose.
    pub async fn facts(&self, key: &str) -> Result<Option<PurposeFacts>, OutboundError> {
        if let Some(facts) = self.remembered(key) {
            return Ok(Some(facts));
        }
        let purpose = self
            .consent()?
            .purpose(key)
            .await
            .map_err(|error| OutboundError::Unavailable(error.to_string()))?;
        let Some(purpose) = purpose else {
            return Ok(None);
        };
        let facts = PurposeFacts {
            kind: PurposeKind::of(purpose.lawful_basis()),
            channels: purpose.channels,
        };
        if let Ok(mut known) = self.known.lock() {
            known.insert(key.to_owned(), (facts.clone(), Instant::now()));
        }
        Ok(Some(facts))
    }

    /// The purpose `field` names, which must exist and cover `channel`.
    pub async fn usable(
        &self,
        field: &str,
        key: &str,
        channel: Channel,
    ) -> Result<PurposeKind, OutboundError> {
        let facts = self.facts(key).await?.ok_or_else(|| {
            OutboundError::invalid(field, "no such purpose in the consent service")
        })?;
        if !facts.covers(channel) {
            return Err(OutboundError::invalid(
                field,
                format!(
                    "purpose {key:?} does not cover the {} channel in the consent service",
                    channel.as_str()
                ),
            ));
        }
        Ok(facts.kind)
    }

    fn remembered(&self, key: &str) -> Option<PurposeFacts> {
        let known = self.known.lock().ok()?;
        let (facts, at) = known.get(key)?;
        (at.elapsed() < REMEMBERED_FOR).then(|| facts.clone())
    }
}
