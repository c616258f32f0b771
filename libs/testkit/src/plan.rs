//! What PostgreSQL plans for a feed's read, for tests that it reads through its index.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// Asserts that a feed's read, `query` (its parameters as every feed's: the cursor's
/// transaction as text, its sequence number, a filter array, a limit), run as a feed runs its
/// reads ([`ecrm_platform::feed::in_index_order`]), walks `index` and sorts nothing: it reads in
/// index order, whatever the table's size.
pub fn assert_feed_reads_in_index_order(
    conn: &mut PgConnection,
    query: &str,
    index: &str,
) -> QueryResult<()> {
    let explain = diesel::sql_query(format!("EXPLAIN {query}"))
        .bind::<Text, _>("0")
        .bind::<BigInt, _>(0)
        .bind::<Array<Text>, _>(Vec::<String>::new())
        .bind::<BigInt, _>(500);
    let plan: Vec<String> =
        ecrm_platform::feed::in_index_order(conn, |conn| explain.load::<PlanLine>(conn))?
            .into_iter()
            .map(|l| l.line)
            .collect();
    assert!(plan.iter().any(|l| l.contains(index)), "{plan:#?}");
    assert!(!plan.iter().any(|l| l.contains("Sort")), "{plan:#?}");
    Ok(())
}
