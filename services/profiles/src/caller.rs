//! Who is calling, on whose behalf, and for which purpose: what the access log records and the
//! restriction check reads.

use ecrm_auth::{Principal, PrincipalKind};
use tonic::Request;

use crate::error::ProfilesError;

/// Metadata naming the purpose of a read of personal data.
pub const PURPOSE_HEADER: &str = "x-ecrm-purpose";
/// Metadata naming the person or partner behind an internal service's call.
pub const ON_BEHALF_OF_HEADER: &str = "x-ecrm-on-behalf-of";
/// What the access log says of a write that declared no purpose.
const UNDECLARED: &str = "not_declared";
const MAX_PURPOSE_CHARS: usize = 64;
const MAX_ON_BEHALF_OF_CHARS: usize = 200;

/// A processing purpose, e.g. `customer_service`: lower-case letters, digits, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose(String);

impl Purpose {
    /// The only purpose a restricted subject's data may still be read for (GDPR Art. 18(2)).
    pub const LEGAL_CLAIMS: &str = "legal_claims";
    /// Reads made to answer the subject's own request (access, portability).
    pub const DATA_SUBJECT_REQUEST: &str = "data_subject_request";

    pub fn parse(value: &str) -> Result<Self, ProfilesError> {
        let valid = value.len() <= MAX_PURPOSE_CHARS
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(ProfilesError::invalid(
                PURPOSE_HEADER,
                format!("1 to {MAX_PURPOSE_CHARS} of a-z, 0-9, '_', '.', starting with a letter"),
            ))
        }
    }

    /// Disclosure to a partner the subject consented to share data with.
    pub const PARTNER_SHARING: &str = "partner_sharing";

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether data of a restricted subject may be read for this purpose.
    pub fn allowed_when_restricted(&self) -> bool {
        self.0 == Self::LEGAL_CLAIMS || self.0 == Self::DATA_SUBJECT_REQUEST
    }
}

/// The caller of one RPC.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub purpose: Option<Purpose>,
    /// Only internal services may name someone behind their call.
    pub on_behalf_of: Option<String>,
    /// The RPC, e.g. `Profiles/GetProfile`, for the access log.
    pub method: &'static str,
}

impl Caller {
    pub fn of<T>(request: &Request<T>, method: &'static str) -> Result<Self, tonic::Status> {
        let principal = Principal::of(request)?.clone();
        let metadata = request.metadata();
        let purpose = match metadata.get(PURPOSE_HEADER) {
            None => None,
            Some(value) => Some(Purpose::parse(value.to_str().unwrap_or("\u{0}"))?),
        };
        let on_behalf_of = match metadata.get(ON_BEHALF_OF_HEADER) {
            None => None,
            Some(_) if principal.kind != PrincipalKind::Internal => {
                return Err(ProfilesError::PermissionDenied(
                    "only internal services may act on behalf of someone",
                )
                .into());
            }
            Some(value) => {
                let value = value.to_str().unwrap_or_default();
                if value.is_empty() || value.chars().count() > MAX_ON_BEHALF_OF_CHARS {
                    return Err(ProfilesError::invalid(
                        ON_BEHALF_OF_HEADER,
                        format!("1 to {MAX_ON_BEHALF_OF_CHARS} visible ASCII characters"),
                    )
                    .into());
                }
                Some(value.to_owned())
            }
        };
        Ok(Self {
            principal,
            purpose,
            on_behalf_of,
            method,
        })
    }

    /// A caller for work the service does itself on behalf of a data subject request.
    pub fn for_request(principal: Principal, method: &'static str) -> Self {
        Self {
            principal,
            purpose: Some(Purpose(Purpose::DATA_SUBJECT_REQUEST.to_owned())),
            on_behalf_of: None,
            method,
        }
    }

    /// The same caller, reading to share with the partner it is: what `PullChanges` does
    /// without declaring a purpose.
    pub fn sharing(mut self) -> Self {
        self.purpose = Some(Purpose(Purpose::PARTNER_SHARING.to_owned()));
        self
    }

    /// The partner behind the call, when the caller is a partner's account.
    pub fn partner(&self) -> Option<&str> {
        match self.principal.kind {
            PrincipalKind::Partner => self.principal.partner_id.as_deref(),
            _ => None,
        }
    }

    /// The purpose of a read of personal data, which must be declared.
    pub fn read_purpose(&self) -> Result<&Purpose, ProfilesError> {
        self.purpose.as_ref().ok_or_else(|| {
            ProfilesError::invalid(
                PURPOSE_HEADER,
                "reads of personal data must declare their purpose",
            )
        })
    }

    /// The purpose as the access log records it.
    pub fn logged_purpose(&self) -> &str {
        self.purpose.as_ref().map_or(UNDECLARED, Purpose::as_str)
    }

    /// The caller's partner id; fails unless the caller is a partner's account.
    pub fn require_partner(&self) -> Result<String, ProfilesError> {
        self.partner()
            .map(str::to_owned)
            .ok_or(ProfilesError::PermissionDenied(
                "PartnerSync is for partners' service accounts",
            ))
    }

    /// Fails unless the caller may write profiles directly: partners sync through `PartnerSync`.
    pub fn require_not_partner(&self) -> Result<(), ProfilesError> {
        if self.principal.kind == PrincipalKind::Partner {
            Err(ProfilesError::PermissionDenied(
                "partners change profiles through PartnerSync",
            ))
        } else {
            Ok(())
        }
    }
}
