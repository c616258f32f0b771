//! `ecrm.identity.v1.ServiceAccounts`.

use std::sync::Arc;

use ecrm_auth::{PrincipalKind, Scopes};
use ecrm_platform::time::{from_timestamp, to_timestamp, to_timestamp_opt};
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::service_accounts_server::ServiceAccounts;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{AccountRef, Accounts, NewAccount, SecretInfo, ServiceAccount};
use crate::error::IdentityError;
use ecrm_platform::paging::Page;

pub fn kind_to_proto(kind: PrincipalKind) -> pb::PrincipalKind {
    match kind {
        PrincipalKind::Internal => pb::PrincipalKind::Internal,
        PrincipalKind::Partner => pb::PrincipalKind::Partner,
        PrincipalKind::Operator => pb::PrincipalKind::Operator,
    }
}

fn secret_to_proto(secret: SecretInfo) -> pb::SecretInfo {
    pb::SecretInfo {
        secret_id: secret.id.to_string(),
        created_at: Some(to_timestamp(secret.created_at)),
        expires_at: to_timestamp_opt(secret.expires_at),
    }
}

fn to_proto(account: ServiceAccount) -> pb::ServiceAccount {
    pb::ServiceAccount {
        id: account.id.to_string(),
        client_id: account.client_id,
        display_name: account.display_name,
        kind: kind_to_proto(account.kind).into(),
        partner_id: account.partner_id.unwrap_or_default(),
        scopes: account.scopes.names(),
        secrets: account.secrets.into_iter().map(secret_to_proto).collect(),
        created_at: Some(to_timestamp(account.created_at)),
        disabled_at: to_timestamp_opt(account.disabled_at),
    }
}

fn optional_time(
    field: &'static str,
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, IdentityError> {
    value
        .map(|at| {
            from_timestamp(at).ok_or_else(|| IdentityError::invalid(field, "not a valid timestamp"))
        })
        .transpose()
}

impl TryFrom<pb::CreateServiceAccountRequest> for NewAccount {
    type Error = IdentityError;

    fn try_from(request: pb::CreateServiceAccountRequest) -> Result<Self, Self::Error> {
        let kind = match pb::PrincipalKind::try_from(request.kind) {
            Ok(pb::PrincipalKind::Internal) => PrincipalKind::Internal,
            Ok(pb::PrincipalKind::Partner) => PrincipalKind::Partner,
            _ => {
                return Err(IdentityError::invalid(
                    "kind",
                    "PRINCIPAL_KIND_INTERNAL or PRINCIPAL_KIND_PARTNER",
                ));
            }
        };
        let scopes = Scopes::parse(request.scopes.iter().map(String::as_str))
            .map_err(|error| IdentityError::invalid("scopes", error.to_string()))?;
        let expires_at = optional_time("secret_expires_at", request.secret_expires_at.as_ref())?;
        NewAccount::new(
            &request.display_name,
            kind,
            &request.partner_id,
            scopes,
            expires_at,
        )
    }
}

fn secret_id(value: &str) -> Result<Uuid, IdentityError> {
    Uuid::parse_str(value).map_err(|_| IdentityError::invalid("secret_id", "not a secret id"))
}

#[derive(Debug, Clone)]
pub struct ServiceAccountsService {
    pub accounts: Arc<Accounts>,
}

#[tonic::async_trait]
impl ServiceAccounts for ServiceAccountsService {
    async fn create_service_account(
        &self,
        request: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::CreateServiceAccountResponse>, Status> {
        let new = NewAccount::try_from(request.into_inner())?;
        let (account, secret) = self.accounts.create(new).await?;
        Ok(Response::new(pb::CreateServiceAccountResponse {
            account: Some(to_proto(account)),
            client_secret: secret.into_inner(),
        }))
    }

    async fn get_service_account(
        &self,
        request: Request<pb::GetServiceAccountRequest>,
    ) -> Result<Response<pb::GetServiceAccountResponse>, Status> {
        let reference = AccountRef::parse(&request.into_inner().id)?;
        let account = self.accounts.get(reference).await?;
        Ok(Response::new(pb::GetServiceAccountResponse {
            account: Some(to_proto(account)),
        }))
    }

    async fn list_service_accounts(
        &self,
        request: Request<pb::ListServiceAccountsRequest>,
    ) -> Result<Response<pb::ListServiceAccountsResponse>, Status> {
        let page = Page::from_request(request.get_ref().page.as_ref())?;
        let (accounts, page) = self.accounts.list(page).await?;
        Ok(Response::new(pb::ListServiceAccountsResponse {
            accounts: accounts.into_iter().map(to_proto).collect(),
            page: Some(page),
        }))
    }

    async fn add_secret(
        &self,
        request: Request<pb::AddSecretRequest>,
    ) -> Result<Response<pb::AddSecretResponse>, Status> {
        let request = request.into_inner();
        let reference = AccountRef::parse(&request.id)?;
        let expires_at = optional_time("expires_at", request.expires_at.as_ref())?;
        let (info, secret) = self.accounts.add_secret(reference, expires_at).await?;
        Ok(Response::new(pb::AddSecretResponse {
            secret: Some(secret_to_proto(info)),
            client_secret: secret.into_inner(),
        }))
    }

    async fn remove_secret(
        &self,
        request: Request<pb::RemoveSecretRequest>,
    ) -> Result<Response<pb::RemoveSecretResponse>, Status> {
        let request = request.into_inner();
        let reference = AccountRef::parse(&request.id)?;
        let secret_id = secret_id(&request.secret_id)?;
        self.accounts.remove_secret(reference, secret_id).await?;
        Ok(Response::new(pb::RemoveSecretResponse {}))
    }

    async fn disable_service_account(
        &self,
        request: Request<pb::DisableServiceAccountRequest>,
    ) -> Result<Response<pb::DisableServiceAccountResponse>, Status> {
        let reference = AccountRef::parse(&request.into_inner().id)?;
        let account = self.accounts.disable(reference).await?;
        Ok(Response::new(pb::DisableServiceAccountResponse {
            account: Some(to_proto(account)),
        }))
    }
}
