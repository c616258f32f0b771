//! What outbound asks of profiles: the contact points of recipients, at the moment of sending.

use std::collections::HashMap;
use std::sync::Arc;

use ecrm_auth::{TokenSource, bearer_request};
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient as Client;
use tonic::transport::Channel;
use uuid::Uuid;

/// The most subject ids GetContacts takes in one call.
const MAX_PER_CALL: usize = 1_000;
/// Metadata naming the purpose of a read of personal data, which profiles logs.
const PURPOSE_HEADER: &str = "x-ecrm-purpose";

/// A consent purpose key as profiles' access log takes a purpose: a-z, 0-9, '_' and '.'.
fn logged_purpose(purpose: &str) -> String {
    let mut logged: String = purpose
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .take(64)
        .collect();
    if !logged.starts_with(|c: char| c.is_ascii_lowercase()) {
        logged = format!("m{}", logged.chars().take(63).collect::<String>());
    }
    logged
}

/// A recipient's contact points; `None` when profiles holds none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    pub restricted: bool,
}

#[derive(Clone)]
pub struct ProfilesClient {
    channel: Channel,
    tokens: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for ProfilesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilesClient").finish_non_exhaustive()
    }
}

fn non_empty(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

impl ProfilesClient {
    pub fn new(channel: Channel, tokens: Arc<dyn TokenSource>) -> Self {
        Self { channel, tokens }
    }

    /// The contacts of `subjects` that have a profile (merged ids answer with their
    /// survivor's), read for messages of `purpose`; a subject missing from the map has none.
    pub async fn contacts(
        &self,
        purpose: &str,
        subjects: &[Uuid],
    ) -> Result<HashMap<Uuid, Contact>, tonic::Status> {
        let logged = logged_purpose(purpose)
            .parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>()
            .map_err(|_| tonic::Status::internal("the purpose is not a valid header value"))?;
        let token = self
            .tokens
            .token("profiles", &["profiles.read".to_owned()])
            .await?;
        let mut found = HashMap::with_capacity(subjects.len());
        for chunk in subjects.chunks(MAX_PER_CALL) {
            let mut request = bearer_request(
                &token,
                pb::GetContactsRequest {
                    subject_ids: chunk.iter().map(Uuid::to_string).collect(),
                },
            )?;
            request
                .metadata_mut()
                .insert(PURPOSE_HEADER, logged.clone());
            let response = Client::new(self.channel.clone())
                .get_contacts(request)
                .await?
                .into_inner();
            for contact in response.contacts.into_iter().filter(|c| c.found) {
                let Ok(subject_id) = Uuid::parse_str(&contact.subject_id) else {
                    continue;
                };
                found.insert(
                    subject_id,
                    Contact {
                        email: non_empty(contact.email),
                        phone: non_empty(contact.phone),
                        timezone: non_empty(contact.timezone),
                        locale: non_empty(contact.locale),
                        restricted: contact.restricted,
                    },
                );
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::logged_purpose;

    #[test]
    fn consent_purpose_keys_become_access_log_purposes() {
        assert_eq!(logged_purpose("order_updates"), "order_updates");
        assert_eq!(logged_purpose("share:air-one"), "share_air_one");
        assert_eq!(logged_purpose("9lives"), "m9lives");
    }
}
