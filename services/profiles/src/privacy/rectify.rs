//! Corrections asked for by data subjects (Art. 16), read from their JSON form into attribute
//! changes. A field profiles does not hold is reported, not refused: another service may hold it.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::attributes::domain::{
    Address, AttributeChange, AttributeName, Standard, Value, ValueType, check_change,
};
use crate::error::ProfilesError;

/// A correction as the request carries it: the field and its correct value (`null` clears).
#[derive(Debug, Clone)]
pub struct Correction {
    pub field: String,
    pub value: serde_json::Value,
}

/// The corrections sorted into changes profiles can make (checked like any update) and the
/// fields it does not hold. Errors name `corrections[i].value_json`.
pub fn sort_corrections(
    corrections: &[Correction],
    definitions: &HashMap<String, ValueType>,
) -> Result<(Vec<AttributeChange>, Vec<String>), ProfilesError> {
    let mut changes = Vec::new();
    let mut not_held = Vec::new();
    for (i, correction) in corrections.iter().enumerate() {
        let field = format!("corrections[{i}].value_json");
        let Some(name) = AttributeName::parse(&correction.field) else {
            not_held.push(correction.field.clone());
            continue;
        };
        let value_type = match &name {
            AttributeName::Custom(key) => match definitions.get(key) {
                Some(value_type) => Some(*value_type),
                None => {
                    not_held.push(correction.field.clone());
                    continue;
                }
            },
            AttributeName::Standard(_) => None,
        };
        let value = match &correction.value {
            serde_json::Value::Null => None,
            json => Some(
                value_from_json(&name, value_type, json).map_err(|expected| {
                    ProfilesError::invalid(field.clone(), format!("{expected} for {name}"))
                })?,
            ),
        };
        let change = AttributeChange { name, value, field };
        check_change(&change, definitions)?;
        changes.push(change);
    }
    Ok((changes, not_held))
}

/// An address as JSON: every part optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressJson {
    #[serde(default)]
    lines: Vec<String>,
    #[serde(default)]
    locality: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
}

/// The value of `name` from JSON; on a mismatch, what was expected.
fn value_from_json(
    name: &AttributeName,
    custom: Option<ValueType>,
    json: &serde_json::Value,
) -> Result<Value, &'static str> {
    let text = || {
        json.as_str()
            .map(|s| s.trim().to_owned())
            .ok_or("a JSON string")
    };
    match (name, custom) {
        (AttributeName::Standard(Standard::BirthDate), _) => {
            NaiveDate::parse_from_str(&text()?, "%Y-%m-%d")
                .map(Value::Date)
                .map_err(|_| "a date as \"YYYY-MM-DD\"")
        }
        (AttributeName::Standard(Standard::PostalAddress), _) => {
            let address: AddressJson = serde_json::from_value(json.clone()).map_err(
                |_| "an object with lines, locality, region, postal_code and country (strings)",
            )?;
            Ok(Value::Address(Address {
                lines: address.lines.iter().map(|l| l.trim().to_owned()).collect(),
                locality: address.locality.trim().to_owned(),
                region: address.region.trim().to_owned(),
                postal_code: address.postal_code.trim().to_owned(),
                country: address.country.trim().to_owned(),
            }))
        }
        (AttributeName::Standard(_), _) | (AttributeName::Custom(_), Some(ValueType::String)) => {
            text().map(Value::Text)
        }
        (AttributeName::Custom(_), Some(ValueType::Number)) => {
            json.as_f64().map(Value::Number).ok_or("a JSON number")
        }
        (AttributeName::Custom(_), Some(ValueType::Bool)) => {
            json.as_bool().map(Value::Bool).ok_or("true or false")
        }
        (AttributeName::Custom(_), Some(ValueType::Timestamp)) => {
            DateTime::parse_from_rfc3339(&text()?)
                .map(|t| Value::Timestamp(t.with_timezone(&Utc)))
                .map_err(|_| "an RFC 3339 timestamp")
        }
        (AttributeName::Custom(_), None) => Err("a declared custom attribute"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn correction(field: &str, value: serde_json::Value) -> Correction {
        Correction {
            field: field.to_owned(),
            value,
        }
    }

    #[test]
    fn sorts_held_fields_from_the_rest() -> Result<(), ProfilesError> {
        let definitions = HashMap::from([("tier".to_owned(), ValueType::String)]);
        let (changes, not_held) = sort_corrections(
            &[
                correction("family_name", json!("Martin")),
                correction("birth_date", json!("1980-02-29")),
                correction("custom.tier", json!(null)),
                correction("custom.unknown", json!("x")),
                correction("email", json!("a@example.com")),
            ],
            &definitions,
        )?;
        let names: Vec<String> = changes.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["family_name", "birth_date", "custom.tier"]);
        assert_eq!(
            changes[1].value,
            Some(Value::Date(
                NaiveDate::from_ymd_opt(1980, 2, 29).ok_or(ProfilesError::Corrupt)?
            ))
        );
        assert_eq!(changes[2].value, None);
        assert_eq!(not_held, ["custom.unknown", "email"]);
        Ok(())
    }

    #[test]
    fn a_value_of_the_wrong_shape_names_the_correction() {
        let Err(error) =
            sort_corrections(&[correction("birth_date", json!(1980))], &HashMap::new())
        else {
            panic!("a number is not a date");
        };
        assert!(
            error.to_string().contains("corrections[0].value_json"),
            "{error}"
        );
        let Err(error) = sort_corrections(
            &[
                correction("given_name", json!("Ana")),
                correction("country", json!("France")),
            ],
            &HashMap::new(),
        ) else {
            panic!("a country is two letters");
        };
        assert!(
            error.to_string().contains("corrections[1].value_json"),
            "{error}"
        );
    }
}
