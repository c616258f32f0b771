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
    /// This claim: the outcome is recorded only while it is still the task's.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub claim_id: Uuid,
    /// The trace of the call that created the task, which carrying it out continues.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub traceparent: Option<String>,
}

/// Creates the request's tasks, each keeping `traceparent`, the trace that created them.
pub fn insert_tasks(
    conn: &mut PgConnection,
    request: Uuid,
    tasks: &[(&str, &str)],
    traceparent: Option<&str>,
) -> QueryResult<()> {
    let rows: Vec<_> = tasks
        .iter()
        .map(|(service, action)| {
            (
                request_tasks::request_id.eq(request),
                request_tasks::service.eq(*service),
                request_tasks::action.eq(*action),
                request_tasks::state.eq("pending"),
                request_tasks::traceparent.eq(traceparent),
            )
        })
        .collect();
    diesel::insert_into(request_tasks::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(drop)
}

/// Claims up to `limit` due tasks of requests in progress for `lease_seconds`, which the
/// worker extends while it lives ([`extend_leases`]): a worker that dies with them lets the
/// lease run out, and another picks them up. A check that an erasure
/// left nothing waits for that erasure, and a restriction or its lifting waits for those of
/// the same subject submitted before it (request ids are UUID v7, in submission order), so
/// the subject's last wish is the one that stands.
pub fn claim_due(
    conn: &mut PgConnection,
    limit: i64,
    lease_seconds: i64,
) -> QueryResult<Vec<ClaimedTask>> {
    diesel::sql_query(
        "UPDATE request_tasks t \
         SET next_attempt_at = now() + make_interval(secs => $2), attempts = t.attempts + 1, \
             claim_id = gen_random_uuid() \
         FROM (SELECT request_id, service, action FROM request_tasks d \
               WHERE d.state = 'pending' AND d.next_attempt_at <= now() \
                 AND EXISTS (SELECT 1 FROM requests r \
                             WHERE r.id = d.request_id AND r.status = 'in_progress') \
                 AND (d.action <> 'verify_erased' OR EXISTS ( \
                      SELECT 1 FROM request_tasks e WHERE e.request_id = d.request_id \
                        AND e.service = d.service AND e.action = 'erase' AND e.state = 'done')) \
                 AND (d.action NOT IN ('restrict', 'lift_restriction') OR NOT EXISTS ( \
                      SELECT 1 FROM request_tasks o \
                        JOIN requests ro ON ro.id = o.request_id \
                        JOIN requests rd ON rd.id = d.request_id \
                      WHERE o.service = d.service AND o.state = 'pending' \
                        AND o.action IN ('restrict', 'lift_restriction') \
                        AND ro.status = 'in_progress' AND ro.subject_id = rd.subject_id \
                        AND ro.id < rd.id)) \
               ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due \
         WHERE t.request_id = due.request_id AND t.service = due.service AND t.action = due.action \
         RETURNING t.request_id, t.service, t.action, t.attempts, t.claim_id, t.traceparent",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<diesel::sql_types::Double, _>(lease_seconds as f64)
    .load(conn)
}

/// Extends the lease of every task of `claims` still pending under that claim by
/// `lease_seconds` from now: the worker running them is alive. How many it extended.
pub fn extend_leases(
    conn: &mut PgConnection,
    claims: &[Uuid],
    lease_seconds: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE request_tasks SET next_attempt_at = now() + make_interval(secs => $2) \
         WHERE claim_id = ANY($1) AND state = 'pending'",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(claims)
    .bind::<diesel::sql_types::Double, _>(lease_seconds as f64)
    .execute(conn)
}

/// The task found by key, as long as `claim` still holds it.
type Claimed<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Find<request_tasks::table, (Uuid, &'a String, &'a String)>,
        diesel::dsl::Eq<request_tasks::claim_id, Uuid>,
    >,
    diesel::dsl::Eq<request_tasks::state, &'static str>,
>;

/// The task as claimed, if the claim is still the task's.
fn claimed(task: &ClaimedTask) -> Claimed<'_> {
    request_tasks::table
        .find((task.request_id, &task.service, &task.action))
        .filter(request_tasks::claim_id.eq(task.claim_id))
        .filter(request_tasks::state.eq("pending"))
}

/// What a service reported beyond its sealed result, none of it personal data.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    /// The recipients it told (Art. 19).
    pub notified_recipients: Vec<String>,
    /// The fields it corrected.
    pub corrected_fields: Vec<String>,
}

/// Records the task done; `false` when the claim was lost (the lease ran out and another
/// worker took it), and nothing is written.
pub fn update_done(
    conn: &mut PgConnection,
    task: &ClaimedTask,
    sealed_result: &[u8],
    reported: &Reported,
) -> QueryResult<bool> {
    let texts = |values: &[String]| -> Vec<Option<String>> {
        values.iter().map(|v| Some(v.clone())).collect()
    };
    diesel::update(claimed(task))
        .set((
            request_tasks::state.eq("done"),
            request_tasks::sealed_result.eq(sealed_result),
            request_tasks::last_error.eq(None::<String>),
            request_tasks::completed_at.eq(diesel::dsl::now),
            request_tasks::notified_recipients.eq(texts(&reported.notified_recipients)),
            request_tasks::corrected_fields.eq(texts(&reported.corrected_fields)),
        ))
        .execute(conn)
        .map(|n| n > 0)
}

/// Records that the service refused the task: it is not retried. Unless the claim was lost.
pub fn update_refused(conn: &mut PgConnection, task: &ClaimedTask, error: &str) -> QueryResult<()> {
    diesel::update(claimed(task))
        .set((
            request_tasks::state.eq("failed"),
            request_tasks::last_error.eq(error),
            request_tasks::completed_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(drop)
}

/// Records a failed attempt, unless the claim was lost.
pub fn update_failed(
    conn: &mut PgConnection,
    task: &ClaimedTask,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(claimed(task))
        .set((
            request_tasks::last_error.eq(error),
            request_tasks::next_attempt_at.eq(next_attempt_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Requests in progress that have tasks, all of them done: left so by a crash between the
/// last task and the request's completion.
pub fn list_finished_requests(conn: &mut PgConnection) -> QueryResult<Vec<Uuid>> {
    use crate::schema::consent::requests;
    requests::table
        .filter(requests::status.eq("in_progress"))
        .filter(diesel::dsl::exists(
            request_tasks::table.filter(request_tasks::request_id.eq(requests::id)),
        ))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            request_tasks::table
                .filter(request_tasks::request_id.eq(requests::id))
                .filter(request_tasks::state.ne("done")),
        )))
        .select(requests::id)
        .load(conn)
}

/// Forgets the exports kept for `subject`'s requests: they are its personal data.
pub fn update_forget_exports(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    use crate::schema::consent::requests;
    diesel::update(
        request_tasks::table
            .filter(request_tasks::action.eq("export"))
            .filter(request_tasks::sealed_result.is_not_null())
            .filter(
                request_tasks::request_id.eq_any(
                    requests::table
                        .filter(requests::subject_id.eq(subject))
                        .select(requests::id),
                ),
            ),
    )
    .set(request_tasks::sealed_result.eq(None::<Vec<u8>>))
    .execute(conn)
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

/// Whether no task of the request waits to be run (each is done or was refused).
pub fn none_pending(conn: &mut PgConnection, request: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::not(diesel::dsl::exists(
        request_tasks::table
            .filter(request_tasks::request_id.eq(request))
            .filter(request_tasks::state.eq("pending")),
    )))
    .get_result(conn)
}

/// A task of a request as it stands, without its result.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = request_tasks, check_for_backend(diesel::pg::Pg))]
pub struct TaskState {
    pub service: String,
    pub action: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub notified_recipients: Vec<Option<String>>,
    pub corrected_fields: Vec<Option<String>>,
}

pub fn list_by_request(conn: &mut PgConnection, request: Uuid) -> QueryResult<Vec<TaskState>> {
    request_tasks::table
        .filter(request_tasks::request_id.eq(request))
        .order((request_tasks::service, request_tasks::action))
        .select(TaskState::as_select())
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
