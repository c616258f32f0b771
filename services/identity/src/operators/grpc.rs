//! `ecrm.identity.v1.Operators`.

use std::sync::Arc;

use ecrm_auth::OperatorRole;
use ecrm_crypto::Secret;
use ecrm_platform::time::{to_timestamp, to_timestamp_opt};
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::operators_server::Operators as OperatorsRpc;
use tonic::{Request, Response, Status};

use super::domain::{Operator, OperatorRef, Operators};
use crate::error::IdentityError;
use ecrm_platform::paging::Page;

fn role_to_proto(role: OperatorRole) -> pb::OperatorRole {
    match role {
        OperatorRole::Admin => pb::OperatorRole::Admin,
        OperatorRole::ComplianceOfficer => pb::OperatorRole::ComplianceOfficer,
        OperatorRole::Marketer => pb::OperatorRole::Marketer,
    }
}

fn role_from_proto(value: i32) -> Result<OperatorRole, IdentityError> {
    match pb::OperatorRole::try_from(value) {
        Ok(pb::OperatorRole::Admin) => Ok(OperatorRole::Admin),
        Ok(pb::OperatorRole::ComplianceOfficer) => Ok(OperatorRole::ComplianceOfficer),
        Ok(pb::OperatorRole::Marketer) => Ok(OperatorRole::Marketer),
        _ => Err(IdentityError::invalid(
            "roles",
            format!("unknown role {value}"),
        )),
    }
}

pub fn to_proto(operator: Operator) -> pb::Operator {
    pb::Operator {
        id: operator.id.to_string(),
        username: operator.username,
        roles: operator
            .roles
            .into_iter()
            .map(|role| role_to_proto(role).into())
            .collect(),
        created_at: Some(to_timestamp(operator.created_at)),
        disabled_at: to_timestamp_opt(operator.disabled_at),
    }
}

#[derive(Debug, Clone)]
pub struct OperatorsService {
    pub operators: Arc<Operators>,
}

#[tonic::async_trait]
impl OperatorsRpc for OperatorsService {
    async fn create_operator(
        &self,
        request: Request<pb::CreateOperatorRequest>,
    ) -> Result<Response<pb::CreateOperatorResponse>, Status> {
        let request = request.into_inner();
        let roles = request
            .roles
            .iter()
            .map(|role| role_from_proto(*role))
            .collect::<Result<Vec<_>, _>>()?;
        let operator = self
            .operators
            .create(request.username, Secret::new(request.password), roles)
            .await?;
        Ok(Response::new(pb::CreateOperatorResponse {
            operator: Some(to_proto(operator)),
        }))
    }

    async fn list_operators(
        &self,
        request: Request<pb::ListOperatorsRequest>,
    ) -> Result<Response<pb::ListOperatorsResponse>, Status> {
        let page = Page::from_request(request.get_ref().page.as_ref())?;
        let (operators, page) = self.operators.list(page).await?;
        Ok(Response::new(pb::ListOperatorsResponse {
            operators: operators.into_iter().map(to_proto).collect(),
            page: Some(page),
        }))
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        let request = request.into_inner();
        let reference = OperatorRef::parse(&request.operator)?;
        self.operators
            .set_password(reference, Secret::new(request.password))
            .await?;
        Ok(Response::new(pb::SetPasswordResponse {}))
    }

    async fn disable_operator(
        &self,
        request: Request<pb::DisableOperatorRequest>,
    ) -> Result<Response<pb::DisableOperatorResponse>, Status> {
        let reference = OperatorRef::parse(&request.into_inner().operator)?;
        let operator = self.operators.disable(reference).await?;
        Ok(Response::new(pb::DisableOperatorResponse {
            operator: Some(to_proto(operator)),
        }))
    }
}
