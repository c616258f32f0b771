//! The `interactions` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::profiles::interactions;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = interactions, check_for_backend(diesel::pg::Pg))]
pub struct InteractionRow {
    pub id: Uuid,
    /// `None` once erased (accounting records kept without their subject).
    pub subject_id: Option<Uuid>,
    pub kind: String,
    pub channel: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub order_id: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub sealed_payload: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct NewInteractionRow<'a> {
    pub id: Uuid,
    pub event_id: &'a str,
    pub subject_id: Uuid,
    pub kind: &'a str,
    pub channel: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub order_id: Option<&'a str>,
    pub amount_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub sealed_payload: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct InsertedId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// Inserts the rows whose `(origin, event_id)` is new, all recorded by `origin` (`""` for the
/// organisation's own channels, else the recording partner's id); returns the ids of those
/// inserted.
///
/// One statement of one array a column: its text is the same for every batch, where a
/// multi-row `VALUES` list would be a new statement of a dozen parameters a row for the server
/// to parse and plan each time.
pub fn insert_new(
    conn: &mut PgConnection,
    origin: &str,
    rows: &[NewInteractionRow<'_>],
) -> QueryResult<Vec<Uuid>> {
    use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Text, Timestamptz};
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let events: Vec<&str> = rows.iter().map(|r| r.event_id).collect();
    let subjects: Vec<Uuid> = rows.iter().map(|r| r.subject_id).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
    let channels: Vec<&str> = rows.iter().map(|r| r.channel).collect();
    let orders: Vec<Option<&str>> = rows.iter().map(|r| r.order_id).collect();
    let currencies: Vec<Option<&str>> = rows.iter().map(|r| r.currency).collect();
    let occurred: Vec<DateTime<Utc>> = rows.iter().map(|r| r.occurred_at).collect();
    let expires: Vec<DateTime<Utc>> = rows.iter().map(|r| r.expires_at).collect();
    let amounts: Vec<Option<i64>> = rows.iter().map(|r| r.amount_minor).collect();
    let payloads: Vec<&[u8]> = rows.iter().map(|r| r.sealed_payload.as_slice()).collect();
    let inserted: Vec<InsertedId> = diesel::sql_query(
        "INSERT INTO interactions \
           (id, event_id, subject_id, kind, channel, occurred_at, order_id, amount_minor, \
            currency, sealed_payload, expires_at, origin) \
         SELECT *, $12 FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], \
           $6::timestamptz[], $7::text[], $8::bigint[], $9::text[], $10::bytea[], \
           $11::timestamptz[]) \
         ON CONFLICT DO NOTHING \
         RETURNING id",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
    .bind::<Array<Text>, _>(&events)
    .bind::<Array<diesel::sql_types::Uuid>, _>(&subjects)
    .bind::<Array<Text>, _>(&kinds)
    .bind::<Array<Text>, _>(&channels)
    .bind::<Array<Timestamptz>, _>(&occurred)
    .bind::<Array<Nullable<Text>>, _>(&orders)
    .bind::<Array<Nullable<BigInt>>, _>(&amounts)
    .bind::<Array<Nullable<Text>>, _>(&currencies)
    .bind::<Array<Bytea>, _>(&payloads)
    .bind::<Array<Timestamptz>, _>(&expires)
    .bind::<Text, _>(origin)
    .load(conn)?;
    Ok(inserted.into_iter().map(|row| row.id).collect())
}

/// A subject's interactions, newest first, after the cursor `(occurred_at, id)`; only those
/// recorded by `origin` when it is given.
#[expect(
    clippy::too_many_arguments,
    reason = "one filter per argument of ListInteractions"
)]
pub fn list_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
    origin: Option<&str>,
    kinds: &[&str],
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<InteractionRow>> {
    let mut query = interactions::table
        .filter(interactions::subject_id.eq(subject))
        .order((interactions::occurred_at.desc(), interactions::id.desc()))
        .limit(limit)
        .select(InteractionRow::as_select())
        .into_boxed();
    if let Some(origin) = origin {
        query = query.filter(interactions::origin.eq(origin.to_owned()));
    }
    if !kinds.is_empty() {
        query = query.filter(interactions::kind.eq_any(kinds.to_vec()));
    }
    if let Some(since) = since {
        query = query.filter(interactions::occurred_at.ge(since));
    }
    if let Some(until) = until {
        query = query.filter(interactions::occurred_at.lt(until));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            interactions::occurred_at
                .lt(at)
                .or(interactions::occurred_at
                    .eq(at)
                    .and(interactions::id.lt(id))),
        );
    }
    query.load(conn)
}

/// Every interaction of a subject, oldest first (exports and merges).
pub fn list_all_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
) -> QueryResult<Vec<InteractionRow>> {
    interactions::table
        .filter(interactions::subject_id.eq(subject))
        .order((interactions::occurred_at, interactions::id))
        .select(InteractionRow::as_select())
        .load(conn)
}

pub fn find_many(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<InteractionRow>> {
    interactions::table
        .filter(interactions::id.eq_any(ids))
        .select(InteractionRow::as_select())
        .load(conn)
}

/// Moves an interaction to another subject, its payload resealed with that subject's key.
pub fn update_subject(
    conn: &mut PgConnection,
    id: Uuid,
    subject: Uuid,
    sealed_payload: &[u8],
) -> QueryResult<()> {
    diesel::update(interactions::table.find(id))
        .set((
            interactions::subject_id.eq(subject),
            interactions::sealed_payload.eq(sealed_payload),
        ))
        .execute(conn)
        .map(drop)
}

/// Erasure of orders and returns kept for accounting: no subject, no payload; the order id,
/// amount, currency and date stay until the end of their retention. Returns how many, and the
/// latest end of retention among them.
pub fn pseudonymise_by_subject(
    conn: &mut PgConnection,
    subject: Uuid,
    kinds: &[&str],
) -> QueryResult<(usize, Option<DateTime<Utc>>)> {
    let kept = interactions::table
        .filter(interactions::subject_id.eq(subject))
        .filter(interactions::kind.eq_any(kinds.to_vec()));
    let until: Option<DateTime<Utc>> = kept
        .clone()
        .select(diesel::dsl::max(interactions::expires_at))
        .first(conn)?;
    let count = diesel::update(kept)
        .set((
            interactions::subject_id.eq(None::<Uuid>),
            interactions::sealed_payload.eq(None::<Vec<u8>>),
        ))
        .execute(conn)?;
    Ok((count, until))
}

pub fn delete_by_subject(conn: &mut PgConnection, subject: Uuid) -> QueryResult<usize> {
    diesel::delete(interactions::table.filter(interactions::subject_id.eq(subject))).execute(conn)
}

/// Deletes up to `limit` interactions past their retention; returns how many.
pub fn delete_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    let expired: Vec<Uuid> = interactions::table
        .filter(interactions::expires_at.le(now))
        .select(interactions::id)
        .limit(limit)
        .load(conn)?;
    diesel::delete(interactions::table.filter(interactions::id.eq_any(expired))).execute(conn)
}
