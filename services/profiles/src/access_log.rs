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
    if subjects.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = subjects
        .iter()
        .map(|subject| {
            (
                access_log::id.eq(Uuid::now_v7()),
                access_log::subject_id.eq(*subject),
                access_log::principal.eq(&caller.principal.subject),
                access_log::principal_kind.eq(caller.principal.kind.as_str()),
                access_log::partner_id.eq(caller.principal.partner_id.as_deref()),
                access_log::on_behalf_of.eq(caller.on_behalf_of.as_deref()),
                access_log::purpose.eq(caller.logged_purpose()),
                access_log::method.eq(caller.method),
                access_log::action.eq(action.as_str()),
            )
        })
        .collect();
    diesel::insert_into(access_log::table)
        .values(rows)
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
