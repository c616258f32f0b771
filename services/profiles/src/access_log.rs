//! The access log: who read or wrote whose personal data, for which purpose, and how.

use diesel::prelude::*;
use uuid::Uuid;

use crate::caller::Caller;
use crate::schema::profiles::access_log;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
}

impl Action {
    const fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = access_log, check_for_backend(diesel::pg::Pg))]
pub struct AccessRow {
    pub id: Uuid,
    pub principal: String,
    pub principal_kind: String,
    pub partner_id: Option<String>,
    pub on_behalf_of: Option<String>,
    pub purpose: String,
    pub method: String,
    pub action: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Records that `caller` did `action` on each of `subjects`, in the caller's transaction, so an
/// access is logged exactly when it happens.
pub fn record(
    conn: &mut PgConnection,
    caller: &Caller,
    action: Action,
    subjects: &[Uuid],
) -> QueryResult<()> {
    use diesel::sql_types::{Array, Nullable, Text};
    if subjects.is_empty() {
        return Ok(());
    }
    // One statement of one array of subjects, whatever their number (a batch of interactions
    // names hundreds).
    let ids: Vec<Uuid> = subjects.iter().map(|_| Uuid::now_v7()).collect();
    diesel::sql_query(
        "INSERT INTO access_log \
           (id, subject_id, principal, principal_kind, partner_id, on_behalf_of, purpose, \
            method, action) \
         SELECT id, subject_id, $3, $4, $5, $6, $7, $8, $9 \
         FROM unnest($1::uuid[], $2::uuid[]) AS t(id, subject_id)",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
    .bind::<Array<diesel::sql_types::Uuid>, _>(subjects)
    .bind::<Text, _>(&caller.principal.subject)
    .bind::<Text, _>(caller.principal.kind.as_str())
    .bind::<Nullable<Text>, _>(caller.principal.partner_id.as_deref())
    .bind::<Nullable<Text>, _>(caller.on_behalf_of.as_deref())
    .bind::<Text, _>(caller.logged_purpose())
    .bind::<Text, _>(caller.method)
    .bind::<Text, _>(action.as_str())
    .execute(conn)
    .map(drop)
}

pub fn list_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<Vec<AccessRow>> {
    access_log::table
        .filter(access_log::subject_id.eq(subject))
        .order(access_log::at)
        .select(AccessRow::as_select())
        .load(conn)
}

/// Entries about `from` now name `to`: after a merge, the surviving subject's log is complete.
pub fn update_subject(conn: &mut PgConnection, from: Uuid, to: Uuid) -> QueryResult<usize> {
    diesel::update(access_log::table.filter(access_log::subject_id.eq(from)))
        .set(access_log::subject_id.eq(to))
        .execute(conn)
}

pub fn delete_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(access_log::table.filter(access_log::subject_id.eq(subject))).execute(conn)
}
