//! Attributes between their protobuf form and the domain's.

use ecrm_platform::time::{from_timestamp, to_timestamp};
use ecrm_proto::ecrm::profiles::v1 as pb;
use pb::attribute_value::Value as PbValue;

use super::domain::{
    Address, AttributeChange, AttributeName, Attributes, Definition, Standard, Value, ValueType,
};
use crate::error::ProfilesError;

/// The attributes an upsert sets: every field given (non-empty), every custom key present.
pub fn given(
    attributes: Option<&pb::ProfileAttributes>,
) -> Result<Vec<AttributeChange>, ProfilesError> {
    let Some(attributes) = attributes else {
        return Ok(Vec::new());
    };
    let mut changes = Vec::new();
    for standard in Standard::ALL {
        if let Some(value) = standard_value(attributes, standard)? {
            changes.push(AttributeChange {
                name: AttributeName::Standard(standard),
                value: Some(value),
                field: format!("attributes.{}", standard.as_str()),
            });
        }
    }
    let mut keys: Vec<&String> = attributes.custom.keys().collect();
    keys.sort();
    for key in keys {
        changes.push(custom_change(attributes, key)?);
    }
    Ok(changes)
}

/// The attributes an update sets or clears: exactly the paths of `mask`.
pub fn masked(
    attributes: Option<&pb::ProfileAttributes>,
    mask: Option<&prost_types::FieldMask>,
) -> Result<Vec<AttributeChange>, ProfilesError> {
    let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        return Err(ProfilesError::invalid("update_mask", "names no attribute"));
    }
    let empty = pb::ProfileAttributes::default();
    let attributes = attributes.unwrap_or(&empty);
    let mut changes = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        let name = AttributeName::parse(path).ok_or_else(|| {
            ProfilesError::invalid(
                format!("update_mask.paths[{i}]"),
                format!("{path:?} is not an attribute"),
            )
        })?;
        let change = match &name {
            AttributeName::Standard(standard) => AttributeChange {
                value: standard_value(attributes, *standard)?,
                field: format!("attributes.{}", standard.as_str()),
                name,
            },
            AttributeName::Custom(key) if attributes.custom.contains_key(key) => {
                custom_change(attributes, key)?
            }
            AttributeName::Custom(key) => AttributeChange {
                field: format!("attributes.custom[{key:?}]"),
                value: None,
                name,
            },
        };
        changes.push(change);
    }
    Ok(changes)
}

fn text(value: &str) -> Option<Value> {
    let value = value.trim();
    (!value.is_empty()).then(|| Value::Text(value.to_owned()))
}

fn standard_value(
    attributes: &pb::ProfileAttributes,
    standard: Standard,
) -> Result<Option<Value>, ProfilesError> {
    Ok(match standard {
        Standard::GivenName => text(&attributes.given_name),
        Standard::FamilyName => text(&attributes.family_name),
        Standard::Locale => text(&attributes.locale),
        Standard::Country => text(&attributes.country),
        Standard::Timezone => text(&attributes.timezone),
        Standard::BirthDate => match &attributes.birth_date {
            None => None,
            Some(date) => Some(Value::Date(
                u32::try_from(date.month)
                    .ok()
                    .zip(u32::try_from(date.day).ok())
                    .and_then(|(m, d)| chrono::NaiveDate::from_ymd_opt(date.year, m, d))
                    .ok_or_else(|| {
                        ProfilesError::invalid("attributes.birth_date", "not a calendar date")
                    })?,
            )),
        },
        Standard::PostalAddress => attributes.postal_address.as_ref().map(|a| {
            Value::Address(Address {
                lines: a.lines.iter().map(|l| l.trim().to_owned()).collect(),
                locality: a.locality.trim().to_owned(),
                region: a.region.trim().to_owned(),
                postal_code: a.postal_code.trim().to_owned(),
                country: a.country.trim().to_owned(),
            })
        }),
    })
}

fn custom_change(
    attributes: &pb::ProfileAttributes,
    key: &str,
) -> Result<AttributeChange, ProfilesError> {
    let field = format!("attributes.custom[{key:?}]");
    let name = AttributeName::Custom(key.to_owned());
    if AttributeName::parse(&name.to_string()).is_none() {
        return Err(ProfilesError::invalid(
            field,
            "not a declared attribute key",
        ));
    }
    let value = match attributes.custom.get(key).and_then(|v| v.value.as_ref()) {
        None => return Err(ProfilesError::invalid(field, "a value is required")),
        Some(PbValue::StringValue(s)) => Value::Text(s.trim().to_owned()),
        Some(PbValue::NumberValue(n)) => Value::Number(*n),
        Some(PbValue::BoolValue(b)) => Value::Bool(*b),
        Some(PbValue::TimestampValue(t)) => Value::Timestamp(
            from_timestamp(t)
                .ok_or_else(|| ProfilesError::invalid(field.clone(), "not a valid timestamp"))?,
        ),
    };
    Ok(AttributeChange {
        name,
        value: Some(value),
        field,
    })
}

pub fn to_proto(attributes: &Attributes) -> pb::ProfileAttributes {
    let mut out = pb::ProfileAttributes::default();
    for (name, value) in attributes {
        match (name, value) {
            (AttributeName::Standard(standard), Value::Text(t)) => {
                let slot = match standard {
                    Standard::GivenName => &mut out.given_name,
                    Standard::FamilyName => &mut out.family_name,
                    Standard::Locale => &mut out.locale,
                    Standard::Country => &mut out.country,
                    Standard::Timezone => &mut out.timezone,
                    Standard::BirthDate | Standard::PostalAddress => continue,
                };
                slot.clone_from(t);
            }
            (AttributeName::Standard(Standard::BirthDate), Value::Date(date)) => {
                use chrono::Datelike as _;
                out.birth_date = Some(pb::CalendarDate {
                    year: date.year(),
                    month: i32::try_from(date.month()).unwrap_or_default(),
                    day: i32::try_from(date.day()).unwrap_or_default(),
                });
            }
            (AttributeName::Standard(Standard::PostalAddress), Value::Address(a)) => {
                out.postal_address = Some(pb::PostalAddress {
                    lines: a.lines.clone(),
                    locality: a.locality.clone(),
                    region: a.region.clone(),
                    postal_code: a.postal_code.clone(),
                    country: a.country.clone(),
                });
            }
            (AttributeName::Custom(key), value) => {
                let value = match value {
                    Value::Text(s) => PbValue::StringValue(s.clone()),
                    Value::Number(n) => PbValue::NumberValue(*n),
                    Value::Bool(b) => PbValue::BoolValue(*b),
                    Value::Timestamp(t) => PbValue::TimestampValue(to_timestamp(*t)),
                    Value::Date(_) | Value::Address(_) => continue,
                };
                out.custom
                    .insert(key.clone(), pb::AttributeValue { value: Some(value) });
            }
            // A stored value that does not fit its name is never written (checked on the way in).
            (AttributeName::Standard(_), _) => {}
        }
    }
    out
}

pub fn type_from_proto(value: i32) -> Result<ValueType, ProfilesError> {
    match pb::AttributeType::try_from(value) {
        Ok(pb::AttributeType::String) => Ok(ValueType::String),
        Ok(pb::AttributeType::Number) => Ok(ValueType::Number),
        Ok(pb::AttributeType::Bool) => Ok(ValueType::Bool),
        Ok(pb::AttributeType::Timestamp) => Ok(ValueType::Timestamp),
        _ => Err(ProfilesError::invalid(
            "definition.type",
            "ATTRIBUTE_TYPE_STRING, _NUMBER, _BOOL or _TIMESTAMP",
        )),
    }
}

pub fn definition_to_proto(definition: Definition) -> pb::AttributeDefinition {
    let value_type = match definition.value_type {
        ValueType::String => pb::AttributeType::String,
        ValueType::Number => pb::AttributeType::Number,
        ValueType::Bool => pb::AttributeType::Bool,
        ValueType::Timestamp => pb::AttributeType::Timestamp,
    };
    pb::AttributeDefinition {
        key: definition.key,
        r#type: value_type.into(),
        description: definition.description,
    }
}
