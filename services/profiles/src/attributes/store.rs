//! The `attribute_values` and `attribute_definitions` tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::profiles::{attribute_definitions, attribute_values};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = attribute_values, check_for_backend(diesel::pg::Pg))]
pub struct AttributeValueRow {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub name: String,
    pub sealed_value: Option<Vec<u8>>,
    pub source: String,
    pub recorded_at: DateTime<Utc>,
    pub current: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = attribute_values)]
pub struct NewAttributeValue<'a> {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub name: &'a str,
    pub sealed_value: Option<&'a [u8]>,
    pub source: &'a str,
    pub current: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = attribute_definitions, check_for_backend(diesel::pg::Pg))]
pub struct DefinitionRow {
    pub key: String,
    pub value_type: String,
    pub description: String,
}

/// Records a new value of `name` as the current one; the previous value stays as history.
pub fn insert_current(conn: &mut PgConnection, row: &NewAttributeValue<'_>) -> QueryResult<()> {
    diesel::update(
        attribute_values::table
            .filter(attribute_values::subject_id.eq(row.subject_id))
            .filter(attribute_values::name.eq(row.name))
            .filter(attribute_values::current),
    )
    .set(attribute_values::current.eq(false))
    .execute(conn)?;
    diesel::insert_into(attribute_values::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn list_current_by_subjects(
    conn: &mut PgConnection,
    subjects: &[Uuid],
) -> QueryResult<Vec<AttributeValueRow>> {
    attribute_values::table
        .filter(attribute_values::subject_id.eq_any(subjects))
        .filter(attribute_values::current)
        .select(AttributeValueRow::as_select())
        .load(conn)
}

/// The current values of the attributes `names` of `subjects`.
pub fn list_current_by_subjects_and_names(
    conn: &mut PgConnection,
    subjects: &[Uuid],
    names: &[&str],
) -> QueryResult<Vec<AttributeValueRow>> {
    attribute_values::table
        .filter(attribute_values::subject_id.eq_any(subjects))
        .filter(attribute_values::name.eq_any(names))
        .filter(attribute_values::current)
        .select(AttributeValueRow::as_select())
        .load(conn)
}

/// Every value a subject's attributes had, oldest first.
pub fn list_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<AttributeValueRow>> {
    attribute_values::table
        .filter(attribute_values::subject_id.eq(subject))
        .order(attribute_values::id)
        .select(AttributeValueRow::as_select())
        .load(conn)
}

/// Moves a value to another subject, resealed with its key; `current` false keeps it as history.
pub fn update_subject(
    conn: &mut PgConnection,
    id: Uuid,
    subject: Uuid,
    sealed_value: Option<&[u8]>,
    current: bool,
) -> QueryResult<()> {
    diesel::update(attribute_values::table.find(id))
        .set((
            attribute_values::subject_id.eq(subject),
            attribute_values::sealed_value.eq(sealed_value),
            attribute_values::current.eq(current),
        ))
        .execute(conn)
        .map(drop)
}

pub fn delete_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(attribute_values::table.filter(attribute_values::subject_id.eq(subject)))
        .execute(conn)
}

pub fn list_definitions(conn: &mut PgConnection) -> QueryResult<Vec<DefinitionRow>> {
    attribute_definitions::table
        .order(attribute_definitions::key)
        .select(DefinitionRow::as_select())
        .load(conn)
}

/// Creates the definition, or updates its description when the type is the same; returns the
/// stored definition (whose type differs from `value_type` when the key was declared otherwise).
pub fn upsert_definition(
    conn: &mut PgConnection,
    key: &str,
    value_type: &str,
    description: &str,
) -> QueryResult<DefinitionRow> {
    diesel::insert_into(attribute_definitions::table)
        .values((
            attribute_definitions::key.eq(key),
            attribute_definitions::value_type.eq(value_type),
            attribute_definitions::description.eq(description),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    diesel::update(
        attribute_definitions::table
            .filter(attribute_definitions::key.eq(key))
            .filter(attribute_definitions::value_type.eq(value_type)),
    )
    .set(attribute_definitions::description.eq(description))
    .execute(conn)?;
    attribute_definitions::table
        .find(key)
        .select(DefinitionRow::as_select())
        .first(conn)
}
