//! The `customer_attributes` table: the profile attributes rules read (country, locale,
//! custom attributes), by rule field name, as profiles' created and updated changes give them.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use diesel::prelude::*;
use diesel::sql_types::Uuid as SqlUuid;
use ecrm_platform::time::from_timestamp;
use ecrm_proto::ecrm::profiles::v1 as pb;
use pb::attribute_value::Value as PbValue;
use uuid::Uuid;

use crate::schema::segmentation::customer_attributes;
use crate::segments::facts::{CUSTOM_PREFIX, is_attribute_field};

/// A customer's attributes: rule field name to value.
pub type Attributes = BTreeMap<String, String>;

/// The attributes a created or updated change carries, by rule field name. A custom key a
/// rule could not name is left out; typed custom values become text: numbers as the shortest
/// decimal that reads back the same (`42`, `4.5`), booleans `true` / `false`, timestamps in
/// RFC 3339 UTC (`2026-10-01T12:00:00Z`).
pub fn from_change(change: &pb::Change) -> Attributes {
    let mut attributes = Attributes::new();
    for (field, value) in [("country", &change.country), ("locale", &change.locale)] {
        if !value.is_empty() {
            attributes.insert(field.to_owned(), value.clone());
        }
    }
    for (key, value) in &change.custom {
        let field = format!("{CUSTOM_PREFIX}{key}");
        if let Some(text) = value.value.as_ref().and_then(text)
            && is_attribute_field(&field)
        {
            attributes.insert(field, text);
        }
    }
    attributes
}

fn text(value: &PbValue) -> Option<String> {
    match value {
        PbValue::StringValue(s) => Some(s.clone()),
        PbValue::NumberValue(n) if n.is_finite() => Some(n.to_string()),
        PbValue::NumberValue(_) => None,
        PbValue::BoolValue(b) => Some(b.to_string()),
        PbValue::TimestampValue(t) => {
            from_timestamp(t).map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }
    }
}

/// Replaces the customer's attributes with `attributes` (one removed is gone); returns whether
/// anything changed.
pub fn replace(
    conn: &mut PgConnection,
    subject: Uuid,
    attributes: &Attributes,
) -> QueryResult<bool> {
    let current: Attributes = list_by_subject(conn, subject)?.into_iter().collect();
    if current == *attributes {
        return Ok(false);
    }
    delete_subject(conn, subject)?;
    let rows: Vec<_> = attributes
        .iter()
        .map(|(key, value)| {
            (
                customer_attributes::subject_id.eq(subject),
                customer_attributes::key.eq(key),
                customer_attributes::value.eq(value),
            )
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(customer_attributes::table)
            .values(rows)
            .execute(conn)?;
    }
    Ok(true)
}

/// Moves `merged`'s attributes to `into` for the keys `into` lacks; `into` keeps its own
/// values (as profiles does when it merges the profiles).
pub fn merge(conn: &mut PgConnection, into: Uuid, merged: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO customer_attributes (subject_id, key, value) \
           SELECT $1, key, value FROM customer_attributes WHERE subject_id = $2 \
         ON CONFLICT (subject_id, key) DO NOTHING",
    )
    .bind::<SqlUuid, _>(into)
    .bind::<SqlUuid, _>(merged)
    .execute(conn)?;
    delete_subject(conn, merged).map(drop)
}

/// One customer's attributes, by field name.
pub fn list_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<(String, String)>> {
    customer_attributes::table
        .filter(customer_attributes::subject_id.eq(subject))
        .order(customer_attributes::key)
        .select((customer_attributes::key, customer_attributes::value))
        .load(conn)
}

/// The attributes of `subjects`, in one query.
pub fn list_by_subjects(
    conn: &mut PgConnection,
    subjects: &[Uuid],
) -> QueryResult<Vec<(Uuid, String, String)>> {
    customer_attributes::table
        .filter(customer_attributes::subject_id.eq_any(subjects))
        .select((
            customer_attributes::subject_id,
            customer_attributes::key,
            customer_attributes::value,
        ))
        .load(conn)
}

pub fn delete_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(customer_attributes::table.filter(customer_attributes::subject_id.eq(subject)))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(value: PbValue) -> pb::AttributeValue {
        pb::AttributeValue { value: Some(value) }
    }

    #[test]
    fn a_change_gives_text_attributes_by_field_name() {
        let change = pb::Change {
            country: "FR".to_owned(),
            custom: [
                ("tier", value(PbValue::StringValue("gold".to_owned()))),
                ("shoe_size", value(PbValue::NumberValue(42.0))),
                ("ratio", value(PbValue::NumberValue(4.5))),
                ("vip", value(PbValue::BoolValue(true))),
                (
                    "since",
                    value(PbValue::TimestampValue(prost_types::Timestamp {
                        seconds: 1_790_000_000,
                        nanos: 0,
                    })),
                ),
                ("Bad-Key", value(PbValue::StringValue("x".to_owned()))),
                ("empty", pb::AttributeValue { value: None }),
                ("nan", value(PbValue::NumberValue(f64::NAN))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            ..Default::default()
        };
        let attributes = from_change(&change);
        let expected: Attributes = [
            ("country", "FR"),
            ("custom.tier", "gold"),
            ("custom.shoe_size", "42"),
            ("custom.ratio", "4.5"),
            ("custom.vip", "true"),
            ("custom.since", "2026-09-21T14:13:20Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(attributes, expected);
    }
}
