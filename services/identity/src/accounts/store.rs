//! The `service_accounts` and `service_account_secrets` tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::identity::{service_account_secrets, service_accounts};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_accounts, check_for_backend(diesel::pg::Pg))]
pub struct ServiceAccountRow {
    pub id: Uuid,
    pub client_id: String,
    pub display_name: String,
    pub kind: String,
    pub partner_id: Option<String>,
    pub scopes: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = service_accounts)]
pub struct NewServiceAccount<'a> {
    pub id: Uuid,
    pub client_id: &'a str,
    pub display_name: &'a str,
    pub kind: &'a str,
    pub partner_id: Option<&'a str>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_account_secrets, check_for_backend(diesel::pg::Pg))]
pub struct SecretRow {
    pub id: Uuid,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = service_account_secrets)]
pub struct NewSecret<'a> {
    pub id: Uuid,
    pub account_id: Uuid,
    pub secret_hash: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

pub fn insert_account(conn: &mut PgConnection, account: &NewServiceAccount<'_>) -> QueryResult<()> {
    diesel::insert_into(service_accounts::table)
        .values(account)
        .execute(conn)
        .map(drop)
}

pub fn insert_secret(conn: &mut PgConnection, secret: &NewSecret<'_>) -> QueryResult<()> {
    diesel::insert_into(service_account_secrets::table)
        .values(secret)
        .execute(conn)
        .map(drop)
}

pub fn find_by_id(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<ServiceAccountRow>> {
    service_accounts::table
        .find(id)
        .select(ServiceAccountRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_client_id(
    conn: &mut PgConnection,
    client_id: &str,
) -> QueryResult<Option<ServiceAccountRow>> {
    service_accounts::table
        .filter(service_accounts::client_id.eq(client_id))
        .select(ServiceAccountRow::as_select())
        .first(conn)
        .optional()
}

/// The oldest internal account named `display_name`, disabled or not, locked for the
/// transaction.
pub fn lock_internal_by_display_name(
    conn: &mut PgConnection,
    display_name: &str,
) -> QueryResult<Option<ServiceAccountRow>> {
    service_accounts::table
        .filter(service_accounts::display_name.eq(display_name))
        .filter(service_accounts::kind.eq("internal"))
        .order(service_accounts::id)
        .for_update()
        .select(ServiceAccountRow::as_select())
        .first(conn)
        .optional()
}

pub fn update_scopes(conn: &mut PgConnection, id: Uuid, scopes: Vec<String>) -> QueryResult<()> {
    diesel::update(service_accounts::table.find(id))
        .set(service_accounts::scopes.eq(scopes))
        .execute(conn)
        .map(drop)
}

/// Removes every secret of the account still in use.
pub fn update_remove_all_secrets(
    conn: &mut PgConnection,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        service_account_secrets::table
            .filter(service_account_secrets::account_id.eq(account_id))
            .filter(service_account_secrets::removed_at.is_null()),
    )
    .set(service_account_secrets::removed_at.eq(now))
    .execute(conn)
}

/// Up to `limit` accounts with ids after `after`, in id order (UUID v7: creation order).
pub fn list_after(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<ServiceAccountRow>> {
    let mut query = service_accounts::table
        .select(ServiceAccountRow::as_select())
        .order(service_accounts::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(service_accounts::id.gt(after));
    }
    query.load(conn)
}

/// Secrets not removed and not expired at `now`.
pub fn list_active_secrets(
    conn: &mut PgConnection,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Vec<SecretRow>> {
    service_account_secrets::table
        .filter(service_account_secrets::account_id.eq(account_id))
        .filter(service_account_secrets::removed_at.is_null())
        .filter(
            service_account_secrets::expires_at
                .is_null()
                .or(service_account_secrets::expires_at.gt(now)),
        )
        .order(service_account_secrets::created_at)
        .select(SecretRow::as_select())
        .load(conn)
}

/// Marks an active secret removed; false when there was none with that id.
pub fn update_remove_secret(
    conn: &mut PgConnection,
    account_id: Uuid,
    secret_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        service_account_secrets::table
            .filter(service_account_secrets::id.eq(secret_id))
            .filter(service_account_secrets::account_id.eq(account_id))
            .filter(service_account_secrets::removed_at.is_null()),
    )
    .set(service_account_secrets::removed_at.eq(now))
    .execute(conn)
    .map(|count| count > 0)
}

pub fn update_disable(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(
        service_accounts::table
            .find(id)
            .filter(service_accounts::disabled_at.is_null()),
    )
    .set(service_accounts::disabled_at.eq(now))
    .execute(conn)
    .map(drop)
}

/// Ids of every disabled account.
pub fn list_disabled_ids(conn: &mut PgConnection) -> QueryResult<Vec<Uuid>> {
    service_accounts::table
        .filter(service_accounts::disabled_at.is_not_null())
        .select(service_accounts::id)
        .load(conn)
}

/// Locks the account's row until the transaction ends, so concurrent secret changes queue.
pub fn lock_by_id(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Uuid>> {
    service_accounts::table
        .find(id)
        .select(service_accounts::id)
        .for_update()
        .first(conn)
        .optional()
}
