//! Who is calling: what the ledger records as the author of a decision.

use ecrm_auth::{Principal, PrincipalKind};
use tonic::Request;

use crate::error::ConsentError;

#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
}

impl Caller {
    /// The caller of `request`; partners are refused: which subjects a partner may speak for
    /// is the profiles service's to say, and it is not asked yet (deny by default).
    pub fn of<T>(request: &Request<T>) -> Result<Self, ConsentError> {
        let principal = Principal::of(request)
            .map_err(|_| ConsentError::PermissionDenied("no authenticated caller"))?
            .clone();
        if principal.kind == PrincipalKind::Partner {
            return Err(ConsentError::PermissionDenied(
                "partners cannot use the consent service yet",
            ));
        }
        Ok(Self { principal })
    }

    /// The service itself, for what it does on its own (completing a carried-out request).
    pub fn service() -> Self {
        Self {
            principal: Principal {
                subject: "consent".to_owned(),
                kind: PrincipalKind::Internal,
                partner_id: None,
                scopes: ecrm_auth::Scopes::empty(),
                token_id: String::new(),
                expires_at: 0,
            },
        }
    }
}
