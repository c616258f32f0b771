//! Finding a subject by identifier: the profiles service's to answer, asked for the purpose
//! of a data subject request.

use std::sync::Arc;

use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::ConsentError;

const PROFILES: &str = "profiles";
/// The purpose declared on the lookup (profiles requires one on every read).
const PURPOSE: &str = "data_subject_request";

pub struct ProfilesDirectory {
    profiles: Channel,
    tokens: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for ProfilesDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilesDirectory").finish_non_exhaustive()
    }
}

fn unavailable(status: tonic::Status) -> ConsentError {
    ConsentError::Unavailable {
        service: PROFILES,
        status,
    }
}

impl ProfilesDirectory {
    pub fn new(profiles: Channel, tokens: Arc<dyn TokenSource>) -> Self {
        Self { profiles, tokens }
    }

    /// The subject `identifier` names; `None` when no profile holds it.
    pub async fn resolve(
        &self,
        identifier: common::Identifier,
    ) -> Result<Option<Uuid>, ConsentError> {
        let token = self
            .tokens
            .token(PROFILES, &["profiles.read".to_owned()])
            .await
            .map_err(unavailable)?;
        let mut request = bearer_request(
            &token,
            pb::GetProfileRequest {
                subject: Some(common::SubjectRef {
                    subject: Some(common::subject_ref::Subject::Identifier(identifier)),
                }),
            },
        )
        .map_err(unavailable)?;
        request.metadata_mut().insert(
            "x-ecrm-purpose",
            tonic::metadata::MetadataValue::from_static(PURPOSE),
        );
        match ProfilesClient::new(self.profiles.clone())
            .get_profile(request)
            .await
        {
            Ok(response) => Ok(response
                .into_inner()
                .profile
                .and_then(|p| p.subject_id.parse().ok())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            // Profiles says what is wrong with the identifier.
            Err(status) if status.code() == tonic::Code::InvalidArgument => Err(
                ConsentError::invalid("subject.identifier", status.message().to_owned()),
            ),
            Err(status) => Err(unavailable(status)),
        }
    }
}
