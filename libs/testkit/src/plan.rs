//! What PostgreSQL plans for a query, for tests that a hot query reads through its index.

use diesel::connection::SimpleConnection as _;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::Text;

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// The plan of `explain` (an `EXPLAIN` of the query, with its parameters bound), with scans
/// and sorts priced out: on a test's small tables they would win, and they are still chosen
/// where no index can give the rows or their order. A plan without `Sort` reads in index
/// order, whatever the table's size.
pub fn index_plan(
    conn: &mut PgConnection,
    explain: BoxedSqlQuery<'_, Pg, SqlQuery>,
) -> QueryResult<Vec<String>> {
    conn.batch_execute(
        "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off",
    )?;
    let lines: Vec<PlanLine> = explain.load(conn)?;
    conn.batch_execute("RESET enable_seqscan; RESET enable_bitmapscan; RESET enable_sort")?;
    Ok(lines.into_iter().map(|l| l.line).collect())
}
