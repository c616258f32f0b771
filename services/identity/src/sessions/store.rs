//! The `sessions` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::identity::sessions;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRow {
    pub id: Uuid,
    pub principal_id: Uuid,
    pub principal_kind: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub principal_id: Uuid,
    pub principal_kind: &'a str,
    pub token_digest: &'a [u8],
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub fn insert(conn: &mut PgConnection, session: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

pub fn find_by_digest(conn: &mut PgConnection, digest: &[u8]) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .filter(sessions::token_digest.eq(digest))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

pub fn update_last_used(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(sessions::table.find(id))
        .set(sessions::last_used_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// Ends the live session whose token has `digest`: its (id, principal id), or `None` when there
/// is no such session, or it has ended or expired already.
pub fn update_end_by_digest(
    conn: &mut PgConnection,
    digest: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<Option<(Uuid, Uuid)>> {
    diesel::update(
        sessions::table
            .filter(sessions::token_digest.eq(digest))
            .filter(sessions::ended_at.is_null())
            .filter(sessions::expires_at.gt(now)),
    )
    .set(sessions::ended_at.eq(now))
    .returning((sessions::id, sessions::principal_id))
    .get_result(conn)
    .optional()
}

/// Ends every live session of `principal_id`; returns how many.
pub fn update_end_by_principal(
    conn: &mut PgConnection,
    principal_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::principal_id.eq(principal_id))
            .filter(sessions::ended_at.is_null())
            .filter(sessions::expires_at.gt(now)),
    )
    .set(sessions::ended_at.eq(now))
    .execute(conn)
}

/// Forgets sessions that ended or expired before `before`: their tokens are refused either way.
pub fn delete_stale(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(
        sessions::table.filter(
            sessions::ended_at
                .lt(before)
                .or(sessions::expires_at.lt(before)),
        ),
    )
    .execute(conn)
}
