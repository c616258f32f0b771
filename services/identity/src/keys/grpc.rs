//! `ecrm.identity.v1.SigningKeys`.

use std::sync::Arc;

use ecrm_platform::time::to_timestamp_opt;
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::signing_keys_server::SigningKeys;
use tonic::{Request, Response, Status};

use super::domain::{KeyState, Keys, SigningKey};

pub fn state_to_proto(state: KeyState) -> pb::SigningKeyState {
    match state {
        KeyState::Next => pb::SigningKeyState::Next,
        KeyState::Active => pb::SigningKeyState::Active,
        KeyState::Retired => pb::SigningKeyState::Retired,
    }
}

fn to_proto(key: SigningKey) -> pb::SigningKey {
    pb::SigningKey {
        kid: key.kid,
        state: state_to_proto(key.state).into(),
        created_at: Some(ecrm_platform::time::to_timestamp(key.created_at)),
        activated_at: to_timestamp_opt(key.activated_at),
        retired_at: to_timestamp_opt(key.retired_at),
        verify_until: to_timestamp_opt(key.verify_until),
    }
}

#[derive(Debug, Clone)]
pub struct SigningKeysService {
    pub keys: Arc<Keys>,
}

#[tonic::async_trait]
impl SigningKeys for SigningKeysService {
    async fn rotate_signing_keys(
        &self,
        _request: Request<pb::RotateSigningKeysRequest>,
    ) -> Result<Response<pb::RotateSigningKeysResponse>, Status> {
        let keys = self.keys.rotate().await?;
        Ok(Response::new(pb::RotateSigningKeysResponse {
            keys: keys.into_iter().map(to_proto).collect(),
        }))
    }

    async fn list_signing_keys(
        &self,
        _request: Request<pb::ListSigningKeysRequest>,
    ) -> Result<Response<pb::ListSigningKeysResponse>, Status> {
        let keys = self.keys.list().await?;
        Ok(Response::new(pb::ListSigningKeysResponse {
            keys: keys.into_iter().map(to_proto).collect(),
        }))
    }
}
