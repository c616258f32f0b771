//! Which subjects share which of their data with a partner: the question `PartnerSync` and a
//! partner's reads ask before disclosing anything. The consent service answers it (purpose
//! `share:<partner_id>`, whose data categories name the fields below); until it is wired, nothing
//! is shared.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;

use futures::future::BoxFuture;
use uuid::Uuid;

use crate::attributes::domain::{AttributeName, Attributes};
use crate::error::ProfilesError;
use crate::identifiers::domain::{Identifier, IdentifierKind, StoredIdentifier};

/// Prefix of the field naming a custom identifier type, e.g. `custom_identifier.member_card`.
const CUSTOM_IDENTIFIER_PREFIX: &str = "custom_identifier.";

/// The fields of a profile a subject's consent lets a partner see, named as in update masks
/// (`given_name`, `postal_address`, `custom.<key>`) and by identifier kind (`email`, `phone`,
/// `loyalty_number`, `custom_identifier.<type>`). A partner always sees its own references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedFields(BTreeSet<String>);

impl SharedFields {
    pub fn new<I, S>(fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(fields.into_iter().map(Into::into).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn covers(&self, field: &str) -> bool {
        self.0.contains(field)
    }

    /// `attributes` without what these fields do not cover.
    pub fn filter_attributes(&self, attributes: &mut Attributes) {
        attributes.retain(|name: &AttributeName, _| self.covers(&name.to_string()));
    }

    /// Whether the partner `partner` may see `identifier`.
    pub fn covers_identifier(&self, partner: &str, identifier: &StoredIdentifier) -> bool {
        let identifier = &identifier.identifier;
        match identifier_field(identifier) {
            Some(field) => self.covers(&field),
            None => identifier.partner_id.as_deref() == Some(partner),
        }
    }

    /// The field names, for the record of a disclosure.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// The field naming an identifier's kind; `None` for partner references, which are never shared
/// with another partner.
pub fn identifier_field(identifier: &Identifier) -> Option<String> {
    match identifier.kind {
        IdentifierKind::PartnerReference => None,
        IdentifierKind::Custom => Some(format!(
            "{CUSTOM_IDENTIFIER_PREFIX}{}",
            identifier.custom_type.as_deref().unwrap_or_default()
        )),
        kind => Some(kind.as_str().to_owned()),
    }
}

/// Answers which of `subjects` currently agree to share data with `partner`, and which fields.
/// A subject missing from the answer shares nothing: deny by default.
pub trait SharingPolicy: Debug + Send + Sync {
    fn shared<'a>(
        &'a self,
        partner: &'a str,
        subjects: &'a [Uuid],
    ) -> BoxFuture<'a, Result<HashMap<Uuid, SharedFields>, ProfilesError>>;
}

/// The policy until the consent service answers: no subject shares anything with any partner.
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingShared;

impl SharingPolicy for NothingShared {
    fn shared<'a>(
        &'a self,
        _partner: &'a str,
        _subjects: &'a [Uuid],
    ) -> BoxFuture<'a, Result<HashMap<Uuid, SharedFields>, ProfilesError>> {
        Box::pin(async { Ok(HashMap::new()) })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use ecrm_crypto::Secret;

    use super::*;
    use crate::attributes::domain::{Standard, Value};

    fn stored(
        kind: IdentifierKind,
        partner: Option<&str>,
        custom: Option<&str>,
    ) -> StoredIdentifier {
        StoredIdentifier {
            identifier: Identifier {
                kind,
                partner_id: partner.map(str::to_owned),
                custom_type: custom.map(str::to_owned),
                value: Secret::new("x".to_owned()),
            },
            verified_at: None,
            verification_method: None,
            source: "test".to_owned(),
            added_at: Utc::now(),
        }
    }

    #[test]
    fn only_named_fields_and_own_references_are_covered() {
        let fields = SharedFields::new([
            "given_name",
            "email",
            "custom.tier",
            "custom_identifier.card",
        ]);
        let mut attributes = Attributes::new();
        for (name, value) in [
            (AttributeName::Standard(Standard::GivenName), "Ada"),
            (AttributeName::Standard(Standard::FamilyName), "Lovelace"),
            (AttributeName::Custom("tier".to_owned()), "gold"),
            (AttributeName::Custom("score".to_owned()), "7"),
        ] {
            attributes.insert(name, Value::Text(value.to_owned()));
        }
        fields.filter_attributes(&mut attributes);
        let kept: Vec<String> = attributes.keys().map(ToString::to_string).collect();
        assert_eq!(kept, ["given_name", "custom.tier"]);

        assert!(fields.covers_identifier("air", &stored(IdentifierKind::Email, None, None)));
        assert!(!fields.covers_identifier("air", &stored(IdentifierKind::Phone, None, None)));
        assert!(fields.covers_identifier(
            "air",
            &stored(IdentifierKind::PartnerReference, Some("air"), None)
        ));
        assert!(!fields.covers_identifier(
            "air",
            &stored(IdentifierKind::PartnerReference, Some("hotel"), None)
        ));
        assert!(
            fields.covers_identifier("air", &stored(IdentifierKind::Custom, None, Some("card")))
        );
        assert!(
            !fields.covers_identifier("air", &stored(IdentifierKind::Custom, None, Some("badge")))
        );
        // Nothing shared still lets a partner see its own reference.
        let nothing = SharedFields::default();
        assert!(nothing.covers_identifier(
            "air",
            &stored(IdentifierKind::PartnerReference, Some("air"), None)
        ));
    }
}
