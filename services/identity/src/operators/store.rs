//! The `operators` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::identity::operators;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = operators, check_for_backend(diesel::pg::Pg))]
pub struct OperatorRow {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub roles: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = operators)]
pub struct NewOperator<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub roles: Vec<String>,
}

pub fn insert(conn: &mut PgConnection, operator: &NewOperator<'_>) -> QueryResult<()> {
    diesel::insert_into(operators::table)
        .values(operator)
        .execute(conn)
        .map(drop)
}

pub fn find_by_id(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<OperatorRow>> {
    operators::table
        .find(id)
        .select(OperatorRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_username(
    conn: &mut PgConnection,
    username: &str,
) -> QueryResult<Option<OperatorRow>> {
    operators::table
        .filter(operators::username.eq(username))
        .select(OperatorRow::as_select())
        .first(conn)
        .optional()
}

pub fn list_after(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<OperatorRow>> {
    let mut query = operators::table
        .select(OperatorRow::as_select())
        .order(operators::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(operators::id.gt(after));
    }
    query.load(conn)
}

pub fn count(conn: &mut PgConnection) -> QueryResult<i64> {
    operators::table.count().get_result(conn)
}

pub fn update_password(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(operators::table.find(id))
        .set((
            operators::password_hash.eq(password_hash),
            operators::password_changed_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

pub fn update_disable(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(
        operators::table
            .find(id)
            .filter(operators::disabled_at.is_null()),
    )
    .set(operators::disabled_at.eq(now))
    .execute(conn)
    .map(drop)
}

pub fn list_disabled_ids(conn: &mut PgConnection) -> QueryResult<Vec<Uuid>> {
    operators::table
        .filter(operators::disabled_at.is_not_null())
        .select(operators::id)
        .load(conn)
}
