//! `ecrm.identity.v1.Tokens`.

use std::sync::Arc;

use ecrm_auth::{Principal, PrincipalKind};
use ecrm_crypto::Secret;
use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::issue_token_request::Grant as PbGrant;
use ecrm_proto::ecrm::identity::v1::tokens_server::Tokens as TokensRpc;
use tonic::{Request, Response, Status};

use super::domain::{Credentials, Grant, TokenRequest, Tokens};
use crate::error::IdentityError;
use crate::keys::grpc::state_to_proto;
use crate::sessions::domain::{RefreshToken, Sessions};

#[derive(Debug, Clone)]
pub struct TokensService {
    pub tokens: Arc<Tokens>,
    pub sessions: Arc<Sessions>,
}

/// The checked request, with the caller's address (attempts are counted per source).
impl TryFrom<Request<pb::IssueTokenRequest>> for TokenRequest {
    type Error = IdentityError;

    fn try_from(request: Request<pb::IssueTokenRequest>) -> Result<Self, Self::Error> {
        let source = request.remote_addr().map(|addr| addr.ip());
        token_request(request.into_inner(), source)
    }
}

fn token_request(
    request: pb::IssueTokenRequest,
    source: Option<std::net::IpAddr>,
) -> Result<TokenRequest, IdentityError> {
    let grant = match request.grant {
        Some(PbGrant::ClientCredentials(credentials)) => {
            if credentials.client_id.is_empty() {
                return Err(IdentityError::invalid(
                    "client_credentials.client_id",
                    "required",
                ));
            }
            Grant::Login(Credentials::ClientCredentials {
                client_id: credentials.client_id,
                secret: Secret::new(credentials.client_secret),
            })
        }
        Some(PbGrant::OperatorPassword(login)) => {
            if login.username.is_empty() {
                return Err(IdentityError::invalid(
                    "operator_password.username",
                    "required",
                ));
            }
            Grant::Login(Credentials::OperatorPassword {
                username: login.username,
                password: Secret::new(login.password),
            })
        }
        Some(PbGrant::RefreshToken(token)) => {
            Grant::Refresh(RefreshToken::parse("refresh_token", token)?)
        }
        None => {
            return Err(IdentityError::invalid(
                "grant",
                "client_credentials, operator_password or refresh_token required",
            ));
        }
    };
    TokenRequest::new(
        grant,
        &request.scopes,
        &request.audience,
        request.start_session,
        source,
    )
}

#[tonic::async_trait]
impl TokensRpc for TokensService {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let command = TokenRequest::try_from(request)?;
        // In a task of its own: a caller hanging up must not cut the attempt between its
        // counting and its outcome, which would leave it counted as in flight.
        let tokens = self.tokens.clone();
        let issued = tokio::spawn(async move { tokens.issue(command).await })
            .await
            .map_err(IdentityError::from)??;
        let (refresh_token, session_expires_at) =
            issued.session.map_or((String::new(), None), |s| {
                (
                    s.refresh_token.into_inner(),
                    Some(to_timestamp(s.expires_at)),
                )
            });
        let token = issued.token;
        Ok(Response::new(pb::IssueTokenResponse {
            access_token: token
                .as_ref()
                .map(|t| t.token.expose().clone())
                .unwrap_or_default(),
            token_type: "Bearer".to_owned(),
            expires_at: token.as_ref().map(|t| to_timestamp(t.expires_at)),
            scopes: token.as_ref().map(|t| t.scopes.names()).unwrap_or_default(),
            jti: token.map(|t| t.jti).unwrap_or_default(),
            refresh_token,
            session_expires_at,
        }))
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::EndSessionResponse>, Status> {
        let token = RefreshToken::parse("refresh_token", request.into_inner().refresh_token)?;
        let ended = self.sessions.end(&token).await?;
        Ok(Response::new(pb::EndSessionResponse { ended }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let caller = Principal::of(&request)?.clone();
        let newly_revoked = self
            .tokens
            .revoke(&caller, request.into_inner().jti)
            .await?;
        Ok(Response::new(pb::RevokeTokenResponse { newly_revoked }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let (set, keys) = self.tokens.jwks().await?;
        let jwks_json =
            serde_json::to_string(&set).map_err(|error| ecrm_platform::status::internal(&error))?;
        Ok(Response::new(pb::GetJwksResponse {
            jwks_json,
            keys: keys
                .into_iter()
                .map(|key| pb::PublicKey {
                    kid: key.kid,
                    alg: "EdDSA".to_owned(),
                    ed25519_public_key: key.public_key,
                    state: state_to_proto(key.state).into(),
                })
                .collect(),
        }))
    }

    async fn list_revocations(
        &self,
        request: Request<pb::ListRevocationsRequest>,
    ) -> Result<Response<pb::ListRevocationsResponse>, Status> {
        // The verifiers of the suite's own services read it; partners and people have no need.
        if Principal::of(&request)?.kind != PrincipalKind::Internal {
            return Err(IdentityError::PermissionDenied(
                "revocations are for the suite's internal services".to_owned(),
            )
            .into());
        }
        let revocations = self.tokens.revocations().await?;
        Ok(Response::new(pb::ListRevocationsResponse {
            revoked_tokens: revocations
                .revoked_tokens
                .into_iter()
                .map(|(jti, expires_at)| pb::RevokedToken {
                    jti,
                    expires_at: Some(to_timestamp(expires_at)),
                })
                .collect(),
            disabled_subjects: revocations.disabled_subjects,
            as_of: revocations.as_of.map(to_timestamp),
        }))
    }
}
