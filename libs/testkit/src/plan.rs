//! What PostgreSQL plans for a query, for tests that a hot query reads through its index.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::Text;

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// Asserts that the query `explain` is an `EXPLAIN` of (with its parameters bound), run as a
/// feed runs its reads ([`ecrm_platform::feed::in_index_order`]), walks `index` and sorts
/// nothing: it reads in index order, whatever the table's size.
pub fn assert_reads_in_index_order(
    conn: &mut PgConnection,
    explain: BoxedSqlQuery<'_, Pg, SqlQuery>,
    index: &str,
) -> QueryResult<()> {
    let plan: Vec<String> =
        ecrm_platform::feed::in_index_order(conn, |conn| explain.load::<PlanLine>(conn))?
            .into_iter()
            .map(|l| l.line)
            .collect();
    assert!(plan.iter().any(|l| l.contains(index)), "{plan:#?}");
    assert!(!plan.iter().any(|l| l.contains("Sort")), "{plan:#?}");
    Ok(())
}
