//! The `request_tasks` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::consent::request_tasks;

/// A task claimed for running.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedTask {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub request_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub service: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub action: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
}

pub fn insert_tasks(
    conn: &mut PgConnection,
    request: Uuid,
    tasks: &[(&str, &str)],
) -> QueryResult<()> {
    let rows: Vec<_> = tasks
        .iter()
        .map(|(service, action)| {
            (
                request_tasks::request_id.eq(request),
                request_tasks::service.eq(*service),
                request_tasks::action.eq(*action),
                request_tasks::state.eq("pending"),
            )
        })
        .collect();
    diesel::insert_into(request_tasks::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(drop)
}

/// Claims up to `limit` due tasks for `lease_seconds`: a worker that dies with them lets the
/// lease run out, and another picks them up. A check that an erasure left nothing waits for
/// that erasure.
pub fn claim_due(
    conn: &mut PgConnection,
    limit: i64,
    lease_seconds: i64,
) -> QueryResult<Vec<ClaimedTask>> {
    diesel::sql_query(
        "UPDATE request_tasks t \
         SET next_attempt_at = now() + make_interval(secs => $2), attempts = t.attempts + 1 \
         FROM (SELECT request_id, service, action FROM request_tasks d \
               WHERE d.state = 'pending' AND d.next_attempt_at <= now() \
                 AND (d.action <> 'verify_erased' OR EXISTS ( \
                      SELECT 1 FROM request_tasks e WHERE e.request_id = d.request_id \
                        AND e.service = d.service AND e.action = 'erase' AND e.state = 'done')) \
               ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due \
         WHERE t.request_id = due.request_id AND t.service = due.service AND t.action = due.action \
         RETURNING t.request_id, t.service, t.action, t.attempts",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<diesel::sql_types::Double, _>(lease_seconds as f64)
    .load(conn)
}

pub fn update_done(
    conn: &mut PgConnection,
    task: &ClaimedTask,
    sealed_result: &[u8],
) -> QueryResult<()> {
    diesel::update(request_tasks::table.find((task.request_id, &task.service, &task.action)))
        .set((
            request_tasks::state.eq("done"),
            request_tasks::sealed_result.eq(sealed_result),
            request_tasks::last_error.eq(None::<String>),
            request_tasks::completed_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(drop)
}

pub fn update_failed(
    conn: &mut PgConnection,
    task: &ClaimedTask,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(request_tasks::table.find((task.request_id, &task.service, &task.action)))
        .set((
            request_tasks::last_error.eq(error),
            request_tasks::next_attempt_at.eq(next_attempt_at),
        ))
        .execute(conn)
        .map(drop)
}

pub fn find_result(
    conn: &mut PgConnection,
    request: Uuid,
    service: &str,
    action: &str,
) -> QueryResult<Option<Vec<u8>>> {
    request_tasks::table
        .find((request, service, action))
        .select(request_tasks::sealed_result)
        .first::<Option<Vec<u8>>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Whether every task of the request is done.
pub fn all_done(conn: &mut PgConnection, request: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::not(diesel::dsl::exists(
        request_tasks::table
            .filter(request_tasks::request_id.eq(request))
            .filter(request_tasks::state.ne("done")),
    )))
    .get_result(conn)
}

/// Every task of a request: service, action, state, attempts, last error.
pub type TaskState = (String, String, String, i32, Option<String>);

pub fn list_by_request(conn: &mut PgConnection, request: Uuid) -> QueryResult<Vec<TaskState>> {
    request_tasks::table
        .filter(request_tasks::request_id.eq(request))
        .order((request_tasks::service, request_tasks::action))
        .select((
            request_tasks::service,
            request_tasks::action,
            request_tasks::state,
            request_tasks::attempts,
            request_tasks::last_error,
        ))
        .load(conn)
}

/// The sealed results of a request's done tasks of `action`, by service.
pub fn list_results(
    conn: &mut PgConnection,
    request: Uuid,
    action: &str,
) -> QueryResult<Vec<(String, Option<Vec<u8>>)>> {
    request_tasks::table
        .filter(request_tasks::request_id.eq(request))
        .filter(request_tasks::action.eq(action))
        .filter(request_tasks::state.eq("done"))
        .order(request_tasks::service)
        .select((request_tasks::service, request_tasks::sealed_result))
        .load(conn)
}
