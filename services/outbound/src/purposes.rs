//! Whether a purpose is marketing or transactional, from its lawful basis in the consent
//! service, remembered for a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ecrm_proto::ecrm::common::v1::LawfulBasis;

use crate::consent_client::ConsentClient;
use crate::error::OutboundError;

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

pub struct Purposes {
    consent: Option<ConsentClient>,
    known: Mutex<HashMap<String, (PurposeKind, Instant)>>,
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

    /// The purpose's kind; None when consent has no such purpose.
    pub async fn kind(&self, key: &str) -> Result<Option<PurposeKind>, OutboundError> {
        if let Some(kind) = self.remembered(key) {
            return Ok(Some(kind));
        }
        let purpose = self
            .consent()?
            .purpose(key)
            .await
            .map_err(|error| OutboundError::Unavailable(error.to_string()))?;
        let Some(purpose) = purpose else {
            return Ok(None);
        };
        let kind = PurposeKind::of(purpose.lawful_basis());
        if let Ok(mut known) = self.known.lock() {
            known.insert(key.to_owned(), (kind, Instant::now()));
        }
        Ok(Some(kind))
    }

    fn remembered(&self, key: &str) -> Option<PurposeKind> {
        let known = self.known.lock().ok()?;
        let (kind, at) = known.get(key)?;
        (at.elapsed() < REMEMBERED_FOR).then_some(*kind)
    }
}
