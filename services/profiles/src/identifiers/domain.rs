//! Identifier kinds, their normalised forms and validation, and their blind index.

use chrono::{DateTime, Utc};
use ecrm_crypto::{BlindIndexKey, Secret};

use crate::error::ProfilesError;

const MAX_EMAIL_CHARS: usize = 254;
const MAX_EMAIL_LOCAL_CHARS: usize = 64;
const MAX_VALUE_CHARS: usize = 128;
const MAX_TYPE_CHARS: usize = 64;
const MAX_METHOD_CHARS: usize = 64;
/// E.164: at most 15 digits, country code included.
const MAX_PHONE_DIGITS: usize = 15;
const MIN_PHONE_DIGITS: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    Email,
    Phone,
    LoyaltyNumber,
    PartnerReference,
    Custom,
}

impl IdentifierKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::LoyaltyNumber => "loyalty_number",
            IdentifierKind::PartnerReference => "partner_reference",
            IdentifierKind::Custom => "custom",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            IdentifierKind::Email,
            IdentifierKind::Phone,
            IdentifierKind::LoyaltyNumber,
            IdentifierKind::PartnerReference,
            IdentifierKind::Custom,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == stored)
    }
}

/// An identifier in normalised form. Two spellings of the same identifier (an email in another
/// case, a phone with spaces) give equal values, hence the same blind index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    pub kind: IdentifierKind,
    /// For partner references: the partner that issued the value.
    pub partner_id: Option<String>,
    /// For custom identifiers: the declared type.
    pub custom_type: Option<String>,
    pub value: Secret<String>,
}

impl Identifier {
    /// Validates and normalises; errors name the fields `kind`, `value`, `partner_id` and
    /// `custom_type` (callers prefix them with the identifier's place in the request).
    pub fn new(
        kind: IdentifierKind,
        value: &str,
        partner_id: &str,
        custom_type: &str,
    ) -> Result<Self, ProfilesError> {
        let value = match kind {
            IdentifierKind::Email => normalise_email(value)?,
            IdentifierKind::Phone => normalise_phone(value)?,
            IdentifierKind::LoyaltyNumber
            | IdentifierKind::PartnerReference
            | IdentifierKind::Custom => normalise_reference(value)?,
        };
        let partner_id = match kind {
            IdentifierKind::PartnerReference => {
                if !ecrm_auth::is_valid_partner_id(partner_id) {
                    return Err(ProfilesError::invalid(
                        "partner_id",
                        format!(
                            "1 to {} of a-z, 0-9, '-', '_', '.'",
                            ecrm_auth::MAX_PARTNER_ID_CHARS
                        ),
                    ));
                }
                Some(partner_id.to_owned())
            }
            _ if partner_id.is_empty() => None,
            _ => {
                return Err(ProfilesError::invalid(
                    "partner_id",
                    "only for partner references",
                ));
            }
        };
        let custom_type = match kind {
            IdentifierKind::Custom => Some(check_key("custom_type", custom_type)?),
            _ if custom_type.is_empty() => None,
            _ => {
                return Err(ProfilesError::invalid(
                    "custom_type",
                    "only for custom identifiers",
                ));
            }
        };
        Ok(Self {
            kind,
            partner_id,
            custom_type,
            value: Secret::new(value),
        })
    }

    /// The blind index: an HMAC of the kind, its qualifiers and the normalised value, so the
    /// same external id from two partners, or an email and a loyalty number that happen to be
    /// spelled alike, never collide.
    pub fn lookup(&self, key: &BlindIndexKey) -> String {
        let mut input = Vec::with_capacity(64 + self.value.expose().len());
        for part in [
            self.kind.as_str(),
            self.partner_id.as_deref().unwrap_or_default(),
            self.custom_type.as_deref().unwrap_or_default(),
            self.value.expose(),
        ] {
            // Length-prefixed, so no two different tuples give the same bytes.
            input.extend_from_slice(&(part.len() as u64).to_be_bytes());
            input.extend_from_slice(part.as_bytes());
        }
        key.index(&input)
    }
}

/// An identifier to attach, with how it was verified.
#[derive(Debug, Clone)]
pub struct NewIdentifier {
    pub identifier: Identifier,
    pub verified_at: Option<DateTime<Utc>>,
    pub verification_method: Option<String>,
}

impl NewIdentifier {
    pub fn new(
        identifier: Identifier,
        verified: bool,
        verified_at: Option<DateTime<Utc>>,
        verification_method: &str,
    ) -> Result<Self, ProfilesError> {
        if verification_method.chars().count() > MAX_METHOD_CHARS {
            return Err(ProfilesError::invalid(
                "verification_method",
                format!("at most {MAX_METHOD_CHARS} characters"),
            ));
        }
        if !verified && (verified_at.is_some() || !verification_method.is_empty()) {
            return Err(ProfilesError::invalid(
                "verified",
                "must be set when verified_at or verification_method is",
            ));
        }
        if verified_at.is_some_and(|at| at > Utc::now() + chrono::Duration::minutes(5)) {
            return Err(ProfilesError::invalid("verified_at", "is in the future"));
        }
        Ok(Self {
            identifier,
            verified_at: verified.then(|| verified_at.unwrap_or_else(Utc::now)),
            verification_method: (!verification_method.is_empty())
                .then(|| verification_method.to_owned()),
        })
    }
}

/// An identifier as stored on a profile.
#[derive(Debug, Clone)]
pub struct StoredIdentifier {
    pub identifier: Identifier,
    pub verified_at: Option<DateTime<Utc>>,
    pub verification_method: Option<String>,
    pub source: String,
    pub added_at: DateTime<Utc>,
}

/// Lower-cased and trimmed; a local part, one `@`, and a domain of dot-separated labels.
pub fn normalise_email(raw: &str) -> Result<String, ProfilesError> {
    let email = raw.trim().to_lowercase();
    let bad = |reason: &str| Err(ProfilesError::invalid("value", reason.to_owned()));
    if email.is_empty() {
        return bad("an email address is required");
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return bad("an email address has at most 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return bad("not an email address: no '@'");
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= MAX_EMAIL_LOCAL_CHARS
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[],;:\\\"".contains(c));
    if !local_ok {
        return bad("not an email address: bad part before '@'");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !domain_ok {
        return bad("not an email address: bad domain");
    }
    Ok(email)
}

/// E.164: `+`, a country code not starting with 0, 7 to 15 digits in all. Spaces, dashes, dots
/// and parentheses between digits are dropped; anything else is refused rather than guessed.
pub fn normalise_phone(raw: &str) -> Result<String, ProfilesError> {
    let trimmed = raw.trim();
    let Some(rest) = trimmed.strip_prefix('+') else {
        return Err(ProfilesError::invalid(
            "value",
            "a phone number in E.164 form starts with '+' and the country code",
        ));
    };
    let mut digits = String::with_capacity(MAX_PHONE_DIGITS);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => {
                return Err(ProfilesError::invalid(
                    "value",
                    "a phone number holds only digits after '+'",
                ));
            }
        }
    }
    if digits.starts_with('0') {
        return Err(ProfilesError::invalid(
            "value",
            "a country code does not start with 0",
        ));
    }
    if !(MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&digits.len()) {
        return Err(ProfilesError::invalid(
            "value",
            format!("E.164 numbers have {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits"),
        ));
    }
    Ok(format!("+{digits}"))
}

/// Loyalty numbers, partner references and custom identifiers: trimmed, compared exactly.
fn normalise_reference(raw: &str) -> Result<String, ProfilesError> {
    let value = raw.trim();
    if value.is_empty() || value.chars().count() > MAX_VALUE_CHARS {
        return Err(ProfilesError::invalid(
            "value",
            format!("1 to {MAX_VALUE_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ProfilesError::invalid("value", "control characters"));
    }
    Ok(value.to_owned())
}

/// A declared name: lower-case letter, then lower-case letters, digits and `_`, at most 64.
pub fn check_key(field: &str, key: &str) -> Result<String, ProfilesError> {
    let valid = key.len() <= MAX_TYPE_CHARS
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(key.to_owned())
    } else {
        Err(ProfilesError::invalid(
            field,
            format!("1 to {MAX_TYPE_CHARS} of a-z, 0-9, '_', starting with a letter"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use ecrm_crypto::MasterKey;
    use proptest::prelude::*;

    use super::*;

    fn email(raw: &str) -> Identifier {
        Identifier::new(IdentifierKind::Email, raw, "", "").unwrap()
    }

    #[test]
    fn emails_in_another_case_or_with_spaces_are_the_same_identifier() {
        let key = MasterKey::generate()
            .unwrap()
            .0
            .blind_index_key("t")
            .unwrap();
        assert_eq!(
            email(" Jane.Doe@Example.COM ").lookup(&key),
            email("jane.doe@example.com").lookup(&key)
        );
        assert_eq!(email("Jane@Example.com").value.expose(), "jane@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "jane doe@example.com",
            "jane..doe@example.com",
            "jane@-example.com",
            "jane@exa mple.com",
        ] {
            assert!(
                Identifier::new(IdentifierKind::Email, bad, "", "").is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(
            normalise_phone("+33 6 12-34.56 (78)").unwrap(),
            "+33612345678"
        );
        for bad in [
            "0612345678",
            "+0612345678",
            "+33 6 12 34 56 78 90 12 34",
            "+336abc",
            "+1234",
        ] {
            assert!(normalise_phone(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_same_external_id_from_two_partners_is_two_identifiers() {
        let key = MasterKey::generate()
            .unwrap()
            .0
            .blind_index_key("t")
            .unwrap();
        let a = Identifier::new(IdentifierKind::PartnerReference, "X1", "air-a", "").unwrap();
        let b = Identifier::new(IdentifierKind::PartnerReference, "X1", "air-b", "").unwrap();
        assert_ne!(a.lookup(&key), b.lookup(&key));
        assert!(Identifier::new(IdentifierKind::PartnerReference, "X1", "", "").is_err());
        assert!(Identifier::new(IdentifierKind::Email, "a@b.co", "air-a", "").is_err());
        assert!(Identifier::new(IdentifierKind::Custom, "X1", "", "Booking").is_err());
    }

    proptest! {
        #[test]
        fn email_normalisation_is_idempotent(local in "[a-zA-Z0-9._%+-]{1,20}", domain in "[a-zA-Z0-9]{1,10}\\.[a-zA-Z]{2,6}") {
            if let Ok(once) = normalise_email(&format!("  {local}@{domain} ")) {
                prop_assert_eq!(normalise_email(&once).unwrap(), once.clone());
                prop_assert_eq!(once.to_lowercase(), once);
            }
        }

        #[test]
        fn phone_normalisation_is_idempotent(digits in "[1-9][0-9]{6,14}", separator in "[ .-]?") {
            let spaced: String = digits.chars().flat_map(|c| [c].into_iter().chain(separator.chars())).collect();
            let once = normalise_phone(&format!("+{spaced}")).unwrap();
            prop_assert_eq!(&once, &format!("+{digits}"));
            prop_assert_eq!(normalise_phone(&once).unwrap(), once);
        }

        #[test]
        fn no_input_makes_normalisation_panic(raw in "\\PC*") {
            let _ = normalise_email(&raw);
            let _ = normalise_phone(&raw);
            let _ = normalise_reference(&raw);
        }
    }
}
