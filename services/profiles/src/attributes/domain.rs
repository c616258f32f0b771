//! Attribute names, typed values and their validation.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ProfilesError;
use crate::identifiers::domain::check_key;

const MAX_NAME_CHARS: usize = 200;
const MAX_LINE_CHARS: usize = 200;
const MAX_ADDRESS_LINES: usize = 4;
const MAX_CUSTOM_TEXT_CHARS: usize = 1000;
const MAX_LOCALE_CHARS: usize = 35;
const MIN_BIRTH_YEAR: i32 = 1900;
/// The prefix of custom attribute names, in storage and in update masks.
const CUSTOM_PREFIX: &str = "custom.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Standard {
    GivenName,
    FamilyName,
    BirthDate,
    Locale,
    Country,
    Timezone,
    PostalAddress,
}

impl Standard {
    pub const ALL: [Standard; 7] = [
        Standard::GivenName,
        Standard::FamilyName,
        Standard::BirthDate,
        Standard::Locale,
        Standard::Country,
        Standard::Timezone,
        Standard::PostalAddress,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Standard::GivenName => "given_name",
            Standard::FamilyName => "family_name",
            Standard::BirthDate => "birth_date",
            Standard::Locale => "locale",
            Standard::Country => "country",
            Standard::Timezone => "timezone",
            Standard::PostalAddress => "postal_address",
        }
    }
}

/// A standard attribute, or a custom one by its declared key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttributeName {
    Standard(Standard),
    Custom(String),
}

impl AttributeName {
    /// The name as stored and as written in update masks: `given_name`, `custom.<key>`.
    pub fn parse(path: &str) -> Option<Self> {
        if let Some(key) = path.strip_prefix(CUSTOM_PREFIX) {
            return check_key("", key).ok().map(AttributeName::Custom);
        }
        Standard::ALL
            .into_iter()
            .find(|s| s.as_str() == path)
            .map(AttributeName::Standard)
    }
}

impl fmt::Display for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeName::Standard(standard) => f.write_str(standard.as_str()),
            AttributeName::Custom(key) => write!(f, "{CUSTOM_PREFIX}{key}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub lines: Vec<String>,
    pub locality: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
}

/// A value, as sealed in storage (JSON, tagged by type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    Text(String),
    Date(NaiveDate),
    Address(Address),
    Number(f64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
}

/// The type of a custom attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Number,
    Bool,
    Timestamp,
}

impl ValueType {
    pub const fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Bool => "bool",
            ValueType::Timestamp => "timestamp",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            ValueType::String,
            ValueType::Number,
            ValueType::Bool,
            ValueType::Timestamp,
        ]
        .into_iter()
        .find(|t| t.as_str() == stored)
    }

    fn matches(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (ValueType::String, Value::Text(_))
                | (ValueType::Number, Value::Number(_))
                | (ValueType::Bool, Value::Bool(_))
                | (ValueType::Timestamp, Value::Timestamp(_))
        )
    }
}

/// A declared custom attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub key: String,
    pub value_type: ValueType,
    pub description: String,
}

impl Definition {
    pub fn new(key: &str, value_type: ValueType, description: &str) -> Result<Self, ProfilesError> {
        let key = check_key("definition.key", key)?;
        if description.chars().count() > MAX_CUSTOM_TEXT_CHARS {
            return Err(ProfilesError::invalid(
                "definition.description",
                format!("at most {MAX_CUSTOM_TEXT_CHARS} characters"),
            ));
        }
        Ok(Self {
            key,
            value_type,
            description: description.trim().to_owned(),
        })
    }
}

/// A profile's current attributes.
pub type Attributes = BTreeMap<AttributeName, Value>;

/// One attribute to set (`Some`) or clear (`None`), with the request field it came from.
#[derive(Debug, Clone)]
pub struct AttributeChange {
    pub name: AttributeName,
    pub value: Option<Value>,
    /// Where the value was in the request, e.g. `attributes.custom["tier"]`, for errors.
    pub field: String,
}

/// Checks a change's value against the rules of its attribute and, for custom attributes,
/// against the declared type. Errors name `change.field`.
pub fn check_change(
    change: &AttributeChange,
    definitions: &HashMap<String, ValueType>,
) -> Result<(), ProfilesError> {
    let bad = |reason: String| Err(ProfilesError::invalid(change.field.clone(), reason));
    let Some(value) = &change.value else {
        return match &change.name {
            AttributeName::Custom(key) if !definitions.contains_key(key) => {
                bad(format!("no custom attribute {key:?} is defined"))
            }
            _ => Ok(()),
        };
    };
    match (&change.name, value) {
        (AttributeName::Standard(Standard::GivenName | Standard::FamilyName), Value::Text(t)) => {
            check_text(t, MAX_NAME_CHARS).or_else(bad)
        }
        (AttributeName::Standard(Standard::BirthDate), Value::Date(date)) => {
            let today = Utc::now().date_naive();
            if date.year() < MIN_BIRTH_YEAR || *date > today {
                bad(format!("a birth date between {MIN_BIRTH_YEAR} and today"))
            } else {
                Ok(())
            }
        }
        (AttributeName::Standard(Standard::Locale), Value::Text(t)) => {
            if is_language_tag(t) {
                Ok(())
            } else {
                bad("a BCP 47 language tag such as \"fr-FR\"".to_owned())
            }
        }
        (AttributeName::Standard(Standard::Country), Value::Text(t)) => {
            check_country(t).or_else(bad)
        }
        (AttributeName::Standard(Standard::Timezone), Value::Text(t)) => {
            if t.parse::<chrono_tz::Tz>().is_ok() {
                Ok(())
            } else {
                bad("an IANA time zone such as \"Europe/Paris\"".to_owned())
            }
        }
        (AttributeName::Standard(Standard::PostalAddress), Value::Address(address)) => {
            check_address(address).map_err(|reason| {
                ProfilesError::invalid(format!("{}.{}", change.field, reason.0), reason.1)
            })
        }
        (AttributeName::Custom(key), value) => match definitions.get(key) {
            None => bad(format!("no custom attribute {key:?} is defined")),
            Some(expected) if !expected.matches(value) => {
                bad(format!("{key:?} is declared as {}", expected.as_str()))
            }
            Some(_) => match value {
                Value::Text(t) => check_text(t, MAX_CUSTOM_TEXT_CHARS).or_else(bad),
                Value::Number(n) if !n.is_finite() => bad("a finite number".to_owned()),
                _ => Ok(()),
            },
        },
        _ => bad("a value of the wrong type".to_owned()),
    }
}

fn check_text(text: &str, max: usize) -> Result<(), String> {
    if text.is_empty() || text.chars().count() > max {
        Err(format!("1 to {max} characters"))
    } else if text.chars().any(char::is_control) {
        Err("control characters".to_owned())
    } else {
        Ok(())
    }
}

fn check_country(code: &str) -> Result<(), String> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("an ISO 3166-1 alpha-2 code in upper case, e.g. \"FR\"".to_owned())
    }
}

/// The shape of a BCP 47 tag: a 2-3 letter language, then subtags of 1-8 letters or digits.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    tag.len() <= MAX_LOCALE_CHARS
        && language_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The failing sub-field and why.
fn check_address(address: &Address) -> Result<(), (&'static str, String)> {
    if address.lines.len() > MAX_ADDRESS_LINES {
        return Err(("lines", format!("at most {MAX_ADDRESS_LINES} lines")));
    }
    for line in &address.lines {
        check_text(line, MAX_LINE_CHARS).map_err(|reason| ("lines", reason))?;
    }
    for (field, value) in [
        ("locality", &address.locality),
        ("region", &address.region),
        ("postal_code", &address.postal_code),
    ] {
        if !value.is_empty() {
            check_text(value, MAX_LINE_CHARS).map_err(|reason| (field, reason))?;
        }
    }
    if !address.country.is_empty() {
        check_country(&address.country).map_err(|reason| ("country", reason))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, value: Value) -> AttributeChange {
        AttributeChange {
            name: AttributeName::parse(name).unwrap(),
            value: Some(value),
            field: format!("attributes.{name}"),
        }
    }

    #[test]
    fn custom_values_must_have_the_declared_type() {
        let definitions = HashMap::from([("tier".to_owned(), ValueType::String)]);
        assert!(
            check_change(
                &change("custom.tier", Value::Text("gold".into())),
                &definitions
            )
            .is_ok()
        );
        let error =
            check_change(&change("custom.tier", Value::Number(1.0)), &definitions).unwrap_err();
        assert!(error.to_string().contains("custom.tier"), "{error}");
        assert!(
            check_change(
                &change("custom.shoe_size", Value::Number(42.0)),
                &definitions
            )
            .is_err()
        );
    }

    #[test]
    fn standard_values_are_checked() {
        let none = HashMap::new();
        assert!(
            check_change(
                &change("timezone", Value::Text("Europe/Paris".into())),
                &none
            )
            .is_ok()
        );
        assert!(
            check_change(
                &change("timezone", Value::Text("Europe/Pariss".into())),
                &none
            )
            .is_err()
        );
        assert!(check_change(&change("locale", Value::Text("fr-FR".into())), &none).is_ok());
        assert!(check_change(&change("locale", Value::Text("french".into())), &none).is_err());
        assert!(check_change(&change("country", Value::Text("fr".into())), &none).is_err());
        let future = Utc::now().date_naive() + chrono::Days::new(2);
        assert!(check_change(&change("birth_date", Value::Date(future)), &none).is_err());
    }

    #[test]
    fn names_round_trip_through_their_stored_form() {
        for name in ["given_name", "postal_address", "custom.tier"] {
            assert_eq!(AttributeName::parse(name).unwrap().to_string(), name);
        }
        assert!(AttributeName::parse("custom.Tier").is_none());
        assert!(AttributeName::parse("nickname").is_none());
    }
}
