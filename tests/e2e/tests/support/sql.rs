//! Reading the suite's database directly, as an auditor would: what was stored, and how often.

use diesel::prelude::*;
use ecrm_platform::DatabaseUrl;

/// The rows `query` gives, read on a connection of its own.
pub async fn rows<T>(url: DatabaseUrl, query: &'static str) -> Vec<T>
where
    T: QueryableByName<diesel::pg::Pg> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(url.expose()).unwrap();
        diesel::sql_query(query).load::<T>(&mut conn).unwrap()
    })
    .await
    .unwrap()
}

/// The one number `query` (a `SELECT ... AS count`, a bigint) gives.
pub async fn count(url: DatabaseUrl, query: &'static str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    rows::<Count>(url, query).await[0].count
}
