//! The `suppressions` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::outbound::suppressions;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = suppressions, check_for_backend(diesel::pg::Pg))]
pub struct SuppressionRow {
    pub id: Uuid,
    pub channel: String,
    pub address_index: String,
    pub scope: String,
    pub reason: String,
    pub note: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Inserts the suppression unless the address is suppressed on the channel with that scope;
/// returns the one stored, and whether it is this one.
pub fn insert(
    conn: &mut PgConnection,
    row: &SuppressionRow,
) -> QueryResult<(SuppressionRow, bool)> {
    let inserted = diesel::insert_into(suppressions::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)?;
    if inserted > 0 {
        return Ok((row.clone(), true));
    }
    suppressions::table
        .filter(suppressions::channel.eq(&row.channel))
        .filter(suppressions::address_index.eq(&row.address_index))
        .filter(suppressions::scope.eq(&row.scope))
        .select(SuppressionRow::as_select())
        .first(conn)
        .map(|existing| (existing, false))
}

/// Deletes the suppression of the address on the channel with that scope; returns whether
/// there was one.
pub fn delete(
    conn: &mut PgConnection,
    channel: &str,
    address_index: &str,
    scope: &str,
) -> QueryResult<bool> {
    diesel::delete(
        suppressions::table
            .filter(suppressions::channel.eq(channel))
            .filter(suppressions::address_index.eq(address_index))
            .filter(suppressions::scope.eq(scope)),
    )
    .execute(conn)
    .map(|n| n > 0)
}

/// Suppressions newest first, before `before` (their ids are time-ordered), of `channel` and
/// `address_index` when given.
pub fn list(
    conn: &mut PgConnection,
    channel: Option<&str>,
    address_index: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<SuppressionRow>> {
    let mut query = suppressions::table
        .select(SuppressionRow::as_select())
        .order(suppressions::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(channel) = channel {
        query = query.filter(suppressions::channel.eq(channel.to_owned()));
    }
    if let Some(index) = address_index {
        query = query.filter(suppressions::address_index.eq(index.to_owned()));
    }
    if let Some(before) = before {
        query = query.filter(suppressions::id.lt(before));
    }
    query.load(conn)
}

/// The suppressions among `addresses` ((channel, address index) pairs), as (channel, address
/// index, scope).
pub fn matching(
    conn: &mut PgConnection,
    addresses: &[(String, String)],
) -> QueryResult<Vec<(String, String, String)>> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let indexes: Vec<&str> = addresses.iter().map(|(_, index)| index.as_str()).collect();
    let found: Vec<(String, String, String)> = suppressions::table
        .filter(suppressions::address_index.eq_any(indexes))
        .select((
            suppressions::channel,
            suppressions::address_index,
            suppressions::scope,
        ))
        .load(conn)?;
    Ok(found
        .into_iter()
        .filter(|(channel, index, _)| addresses.iter().any(|(c, i)| c == channel && i == index))
        .collect())
}
