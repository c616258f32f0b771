//! Who is calling: the principal behind a verified token.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::scope::{Scope, Scopes};

/// The kind of principal a token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A platform team's service.
    Internal,
    /// A partner system, bound to exactly one `partner_id`.
    Partner,
    /// A person.
    Operator,
}

impl PrincipalKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Internal => "internal",
            PrincipalKind::Partner => "partner",
            PrincipalKind::Operator => "operator",
        }
    }

    /// The scopes a principal of this kind may ever be granted.
    pub fn grantable(self) -> Scopes {
        match self {
            PrincipalKind::Internal => Scopes::all(),
            // Partners sync their customers and their consents, and may forward requests.
            PrincipalKind::Partner => [
                Scope::ProfilesRead,
                Scope::ProfilesWrite,
                Scope::EventsWrite,
                Scope::ConsentRead,
                Scope::ConsentWrite,
                Scope::DsrSubmit,
            ]
            .into_iter()
            .collect(),
            PrincipalKind::Operator => {
                Scopes::all().without(Scopes::empty().with(Scope::PrivacyExecute))
            }
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest partner id.
pub const MAX_PARTNER_ID_CHARS: usize = 64;

/// Whether `partner_id` is well formed: 1 to [`MAX_PARTNER_ID_CHARS`] of a-z, 0-9, '-', '_', '.'.
pub fn is_valid_partner_id(partner_id: &str) -> bool {
    !partner_id.is_empty()
        && partner_id.len() <= MAX_PARTNER_ID_CHARS
        && partner_id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// What an operator does; each role grants a fixed set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperatorRole {
    Admin,
    ComplianceOfficer,
    Marketer,
}

impl OperatorRole {
    pub const ALL: [OperatorRole; 3] = [
        OperatorRole::Admin,
        OperatorRole::ComplianceOfficer,
        OperatorRole::Marketer,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Admin => "admin",
            OperatorRole::ComplianceOfficer => "compliance_officer",
            OperatorRole::Marketer => "marketer",
        }
    }

    pub fn parse(name: &str) -> Option<OperatorRole> {
        OperatorRole::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The scopes the role grants.
    pub fn scopes(self) -> Scopes {
        match self {
            OperatorRole::Admin => PrincipalKind::Operator.grantable(),
            OperatorRole::ComplianceOfficer => [
                Scope::DsrSubmit,
                Scope::DsrManage,
                Scope::ConsentRead,
                Scope::ConsentWrite,
                Scope::ProfilesRead,
            ]
            .into_iter()
            .collect(),
            OperatorRole::Marketer => [
                Scope::SegmentsRead,
                Scope::SegmentsWrite,
                Scope::OutboundSend,
                Scope::OutboundManage,
                Scope::ProfilesRead,
                Scope::ConsentRead,
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// The caller of an RPC, as its verified token says. The auth layer puts it in the request's
/// extensions; handlers read it with [`Principal::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: the opaque id of the service account or operator.
    pub subject: String,
    pub kind: PrincipalKind,
    /// For partners, the partner it acts for.
    pub partner_id: Option<String>,
    pub scopes: Scopes,
    /// The token's `jti`.
    pub token_id: String,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub expires_at: i64,
}

impl Principal {
    /// The principal the auth layer attached to `request`. UNAUTHENTICATED when there is none,
    /// which only happens when a handler is served without the layer.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Principal, tonic::Status> {
        request
            .extensions()
            .get::<Principal>()
            .ok_or_else(|| tonic::Status::unauthenticated("no authenticated principal"))
    }

    /// PERMISSION_DENIED unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), tonic::Status> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(tonic::Status::permission_denied(format!(
                "the token lacks scope {scope}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internal_accounts_may_hold_privacy_execute() {
        assert!(
            PrincipalKind::Internal
                .grantable()
                .contains(Scope::PrivacyExecute)
        );
        assert!(
            !PrincipalKind::Partner
                .grantable()
                .contains(Scope::PrivacyExecute)
        );
        assert!(
            !PrincipalKind::Operator
                .grantable()
                .contains(Scope::PrivacyExecute)
        );
        for role in OperatorRole::ALL {
            assert!(
                role.scopes()
                    .is_subset_of(PrincipalKind::Operator.grantable())
            );
            assert_eq!(OperatorRole::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn partners_cannot_administer() {
        let partner = PrincipalKind::Partner.grantable();
        assert!(!partner.contains(Scope::IdentityAdmin));
        assert!(!partner.contains(Scope::DsrManage));
        assert!(!partner.contains(Scope::OutboundManage));
    }
}
