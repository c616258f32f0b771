//! Service accounts of internal services and partners, and their rotating secrets.

use chrono::{DateTime, Utc};
use ecrm_auth::{MAX_PARTNER_ID_CHARS, PrincipalKind, Scopes};
use ecrm_crypto::Secret;
use ecrm_platform::{Db, DbError};
use uuid::Uuid;

use super::store::{self, NewSecret, NewServiceAccount, SecretRow, ServiceAccountRow};
use crate::credentials::{self, HashPool};
use crate::error::IdentityError;
use crate::sessions::domain as sessions;
use ecrm_platform::paging::Page;

/// Two secrets may be active at once: the old one and its replacement during a rotation.
pub const MAX_ACTIVE_SECRETS: usize = 2;
const MAX_DISPLAY_NAME_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub id: Uuid,
    pub client_id: String,
    pub display_name: String,
    pub kind: PrincipalKind,
    pub partner_id: Option<String>,
    pub scopes: Scopes,
    pub secrets: Vec<SecretInfo>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct SecretInfo {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<SecretRow> for SecretInfo {
    fn from(row: SecretRow) -> Self {
        Self {
            id: row.id,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }
    }
}

fn account(row: ServiceAccountRow, secrets: Vec<SecretRow>) -> ServiceAccount {
    ServiceAccount {
        id: row.id,
        client_id: row.client_id,
        display_name: row.display_name,
        kind: if row.kind == "partner" {
            PrincipalKind::Partner
        } else {
            PrincipalKind::Internal
        },
        partner_id: row.partner_id,
        scopes: Scopes::from_claim(
            &row.scopes
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        ),
        secrets: secrets.into_iter().map(SecretInfo::from).collect(),
        created_at: row.created_at,
        disabled_at: row.disabled_at,
    }
}

/// A request to create an account, checked.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub display_name: String,
    pub kind: PrincipalKind,
    pub partner_id: Option<String>,
    pub scopes: Scopes,
    pub secret_expires_at: Option<DateTime<Utc>>,
}

impl NewAccount {
    pub fn new(
        display_name: &str,
        kind: PrincipalKind,
        partner_id: &str,
        scopes: Scopes,
        secret_expires_at: Option<DateTime<Utc>>,
    ) -> Result<Self, IdentityError> {
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(IdentityError::invalid(
                "display_name",
                format!("1 to {MAX_DISPLAY_NAME_CHARS} characters"),
            ));
        }
        if display_name.chars().any(char::is_control) {
            return Err(IdentityError::invalid(
                "display_name",
                "no control characters",
            ));
        }
        let partner_id = match kind {
            PrincipalKind::Partner => Some(check_partner_id(partner_id)?),
            PrincipalKind::Internal if partner_id.is_empty() => None,
            PrincipalKind::Internal => {
                return Err(IdentityError::invalid(
                    "partner_id",
                    "only partner accounts have one",
                ));
            }
            PrincipalKind::Operator => {
                return Err(IdentityError::invalid(
                    "kind",
                    "PRINCIPAL_KIND_INTERNAL or PRINCIPAL_KIND_PARTNER",
                ));
            }
        };
        let refused = scopes.without(kind.grantable());
        if !refused.is_empty() {
            return Err(IdentityError::invalid(
                "scopes",
                format!("{kind} accounts cannot hold {}", refused.to_claim()),
            ));
        }
        check_expiry("secret_expires_at", secret_expires_at)?;
        Ok(Self {
            display_name: display_name.to_owned(),
            kind,
            partner_id,
            scopes,
            secret_expires_at,
        })
    }
}

fn check_partner_id(partner_id: &str) -> Result<String, IdentityError> {
    if ecrm_auth::is_valid_partner_id(partner_id) {
        Ok(partner_id.to_owned())
    } else {
        Err(IdentityError::invalid(
            "partner_id",
            format!("1 to {MAX_PARTNER_ID_CHARS} of a-z, 0-9, '-', '_', '.'"),
        ))
    }
}

pub fn check_expiry(field: &'static str, at: Option<DateTime<Utc>>) -> Result<(), IdentityError> {
    match at {
        Some(at) if at <= Utc::now() => Err(IdentityError::invalid(field, "must be in the future")),
        _ => Ok(()),
    }
}

/// An account named by its id or its client id.
#[derive(Debug, Clone)]
pub enum AccountRef {
    Id(Uuid),
    ClientId(String),
}

impl AccountRef {
    pub fn parse(value: &str) -> Result<Self, IdentityError> {
        if value.is_empty() {
            return Err(IdentityError::invalid("id", "required"));
        }
        // No client id is longer or holds control characters (a NUL would reach the database).
        if value.len() > 128 || value.chars().any(char::is_control) {
            return Err(IdentityError::invalid(
                "id",
                "a service account's id or client id",
            ));
        }
        Ok(Uuid::parse_str(value).map_or_else(|_| Self::ClientId(value.to_owned()), Self::Id))
    }
}

/// What a login needs to know about an account.
#[derive(Debug)]
pub struct LoginAccount {
    pub id: Uuid,
    pub kind: PrincipalKind,
    pub partner_id: Option<String>,
    pub scopes: Scopes,
    pub disabled: bool,
    pub secret_hashes: Vec<Secret<String>>,
}

pub struct Accounts {
    db: Db,
    hashing: HashPool,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

fn load(
    conn: &mut diesel::PgConnection,
    row: ServiceAccountRow,
) -> Result<ServiceAccount, IdentityError> {
    let secrets = store::list_active_secrets(conn, row.id, Utc::now())?;
    Ok(account(row, secrets))
}

fn find(
    conn: &mut diesel::PgConnection,
    reference: &AccountRef,
) -> Result<ServiceAccountRow, IdentityError> {
    match reference {
        AccountRef::Id(id) => store::find_by_id(conn, *id)?,
        AccountRef::ClientId(client_id) => store::find_by_client_id(conn, client_id)?,
    }
    .ok_or(IdentityError::NotFound("service account"))
}

impl Accounts {
    pub fn new(db: Db, hashing: HashPool) -> Self {
        Self { db, hashing }
    }

    async fn hash(&self, secret: &Secret<String>) -> Result<String, IdentityError> {
        self.hashing.hash(secret).await
    }

    /// Creates the account with its first secret, returned once.
    pub async fn create(
        &self,
        new: NewAccount,
    ) -> Result<(ServiceAccount, Secret<String>), IdentityError> {
        let secret = credentials::new_client_secret()?;
        let hash = self.hash(&secret).await?;
        let client_id = credentials::new_client_id()?;
        let account = self
            .db
            .run(move |conn| {
                let id = Uuid::now_v7();
                store::insert_account(
                    conn,
                    &NewServiceAccount {
                        id,
                        client_id: &client_id,
                        display_name: &new.display_name,
                        kind: new.kind.as_str(),
                        partner_id: new.partner_id.as_deref(),
                        scopes: new.scopes.names(),
                    },
                )?;
                store::insert_secret(
                    conn,
                    &NewSecret {
                        id: Uuid::now_v7(),
                        account_id: id,
                        secret_hash: &hash,
                        expires_at: new.secret_expires_at,
                    },
                )?;
                let row = find(conn, &AccountRef::Id(id))?;
                load(conn, row)
            })
            .await?;
        tracing::info!(account.id = %account.id, kind = %account.kind, "service account created");
        Ok((account, secret))
    }

    /// The internal account named `display_name` with exactly `scopes` and one new secret,
    /// returned once; created when there is none. Earlier secrets stop working: this is how a
    /// suite run in one process hands its services fresh credentials without storing any.
    pub async fn provision_internal(
        &self,
        display_name: &str,
        scopes: Scopes,
    ) -> Result<(ServiceAccount, Secret<String>), IdentityError> {
        let new = NewAccount::new(display_name, PrincipalKind::Internal, "", scopes, None)?;
        let secret = credentials::new_client_secret()?;
        let hash = self.hash(&secret).await?;
        let client_id = credentials::new_client_id()?;
        let account = self
            .db
            .run(move |conn| {
                let id = match store::lock_internal_by_display_name(conn, &new.display_name)? {
                    // An operator disabled it: that decision stands until an operator undoes it.
                    Some(existing) if existing.disabled_at.is_some() => {
                        return Err(IdentityError::FailedPrecondition(format!(
                            "the service account {:?} ({}) is disabled",
                            existing.display_name, existing.client_id
                        )));
                    }
                    Some(existing) => {
                        store::update_remove_all_secrets(conn, existing.id, Utc::now())?;
                        store::update_scopes(conn, existing.id, new.scopes.names())?;
                        existing.id
                    }
                    None => {
                        let id = Uuid::now_v7();
                        store::insert_account(
                            conn,
                            &NewServiceAccount {
                                id,
                                client_id: &client_id,
                                display_name: &new.display_name,
                                kind: new.kind.as_str(),
                                partner_id: None,
                                scopes: new.scopes.names(),
                            },
                        )?;
                        id
                    }
                };
                store::insert_secret(
                    conn,
                    &NewSecret {
                        id: Uuid::now_v7(),
                        account_id: id,
                        secret_hash: &hash,
                        expires_at: None,
                    },
                )?;
                let row = find(conn, &AccountRef::Id(id))?;
                load(conn, row)
            })
            .await?;
        tracing::info!(account.id = %account.id, "internal service account provisioned");
        Ok((account, secret))
    }

    /// Whether `client_id` and `secret` still log in as the enabled internal account
    /// `display_name`; when they do, the account's scopes become exactly `scopes`. Lets a
    /// deployment keep the credentials it stored instead of rotating them on every run.
    pub async fn keep_internal(
        &self,
        display_name: &str,
        client_id: &str,
        secret: &Secret<String>,
        scopes: Scopes,
    ) -> Result<bool, IdentityError> {
        let (display_name, client_id) = (display_name.to_owned(), client_id.to_owned());
        let found = self
            .db
            .run(move |conn| {
                let Some(row) = store::find_by_client_id(conn, &client_id)? else {
                    return Ok::<_, IdentityError>(None);
                };
                if row.kind != PrincipalKind::Internal.as_str()
                    || row.display_name != display_name
                    || row.disabled_at.is_some()
                {
                    return Ok(None);
                }
                let hashes = store::list_active_secrets(conn, row.id, Utc::now())?
                    .into_iter()
                    .map(|s| Secret::new(s.secret_hash))
                    .collect::<Vec<_>>();
                Ok(Some((row.id, hashes)))
            })
            .await?;
        let Some((id, hashes)) = found else {
            return Ok(false);
        };
        if hashes.is_empty()
            || !self
                .hashing
                .matches_any(secret, hashes, MAX_ACTIVE_SECRETS)
                .await?
        {
            return Ok(false);
        }
        self.db
            .run(move |conn| {
                Ok::<_, IdentityError>(store::update_scopes(conn, id, scopes.names())?)
            })
            .await?;
        Ok(true)
    }

    pub async fn get(&self, reference: AccountRef) -> Result<ServiceAccount, IdentityError> {
        self.db
            .run(move |conn| {
                let row = find(conn, &reference)?;
                load(conn, row)
            })
            .await
    }

    pub async fn list(
        &self,
        page: Page,
    ) -> Result<
        (
            Vec<ServiceAccount>,
            ecrm_proto::ecrm::common::v1::PageResponse,
        ),
        IdentityError,
    > {
        self.db
            .run(move |conn| {
                let rows = store::list_after(conn, page.after, page.limit())?;
                let (rows, next) = page.finish(rows, |row| row.id);
                let accounts = rows
                    .into_iter()
                    .map(|row| load(conn, row))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((accounts, next))
            })
            .await
    }

    /// Adds a secret, returned once; refused when two are active already.
    pub async fn add_secret(
        &self,
        reference: AccountRef,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(SecretInfo, Secret<String>), IdentityError> {
        check_expiry("expires_at", expires_at)?;
        let secret = credentials::new_client_secret()?;
        let hash = self.hash(&secret).await?;
        let info = self
            .db
            .run(move |conn| {
                let id = find(conn, &reference)?.id;
                store::lock_by_id(conn, id)?;
                let active = store::list_active_secrets(conn, id, Utc::now())?;
                if active.len() >= MAX_ACTIVE_SECRETS {
                    return Err(IdentityError::FailedPrecondition(format!(
                        "{MAX_ACTIVE_SECRETS} secrets are active already: remove one first"
                    )));
                }
                let secret_id = Uuid::now_v7();
                store::insert_secret(
                    conn,
                    &NewSecret {
                        id: secret_id,
                        account_id: id,
                        secret_hash: &hash,
                        expires_at,
                    },
                )?;
                let added = store::list_active_secrets(conn, id, Utc::now())?
                    .into_iter()
                    .find(|s| s.id == secret_id)
                    .ok_or(IdentityError::NotFound("secret"))?;
                Ok(SecretInfo::from(added))
            })
            .await?;
        Ok((info, secret))
    }

    pub async fn remove_secret(
        &self,
        reference: AccountRef,
        secret_id: Uuid,
    ) -> Result<(), IdentityError> {
        self.db
            .run(move |conn| {
                let id = find(conn, &reference)?.id;
                if store::update_remove_secret(conn, id, secret_id, Utc::now())? {
                    Ok(())
                } else {
                    Err(IdentityError::NotFound("secret"))
                }
            })
            .await
    }

    /// Disables the account and ends its sessions; disabling a disabled account changes
    /// nothing.
    pub async fn disable(&self, reference: AccountRef) -> Result<ServiceAccount, IdentityError> {
        let (account, sessions_ended) = self
            .db
            .run(move |conn| {
                let id = find(conn, &reference)?.id;
                let now = Utc::now();
                store::update_disable(conn, id, now)?;
                let ended = sessions::end_all_of(conn, id, now)?;
                let row = find(conn, &AccountRef::Id(id))?;
                Ok::<_, IdentityError>((load(conn, row)?, ended))
            })
            .await?;
        tracing::info!(account.id = %account.id, "service account disabled");
        sessions::log_ended(account.id, sessions_ended);
        Ok(account)
    }

    /// The account a client id names, with its active secret hashes, for a login.
    pub fn find_login(
        conn: &mut diesel::PgConnection,
        client_id: &str,
    ) -> Result<Option<LoginAccount>, DbError> {
        let Some(row) = store::find_by_client_id(conn, client_id)? else {
            return Ok(None);
        };
        let hashes = store::list_active_secrets(conn, row.id, Utc::now())?
            .into_iter()
            .map(|s| Secret::new(s.secret_hash))
            .collect();
        Ok(Some(login_account(row, hashes)))
    }

    /// The account `id` as it is now, for a session's refresh: without its secrets, which a
    /// refresh does not check.
    pub fn find_principal(
        conn: &mut diesel::PgConnection,
        id: Uuid,
    ) -> Result<Option<LoginAccount>, DbError> {
        Ok(store::find_by_id(conn, id)?.map(|row| login_account(row, Vec::new())))
    }
}

fn login_account(row: ServiceAccountRow, secret_hashes: Vec<Secret<String>>) -> LoginAccount {
    let account = account(row, Vec::new());
    LoginAccount {
        id: account.id,
        kind: account.kind,
        partner_id: account.partner_id,
        scopes: account.scopes,
        disabled: account.disabled_at.is_some(),
        secret_hashes,
    }
}
