//! `ecrm.profiles.v1.Profiles`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_crypto::Secret;
use ecrm_platform::paging::Page;
use ecrm_platform::time::{from_timestamp, to_timestamp, to_timestamp_opt};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::profiles_server::Profiles as ProfilesApi;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::contacts::Contact;
use super::domain::{Profiles, SubjectLookup, UpsertCommand, check_source};
use super::view::Profile;
use crate::attributes::domain::Definition;
use crate::attributes::grpc as attributes;
use crate::caller::Caller;
use crate::changes::grpc::{ChangeStream, Feed};
use crate::error::ProfilesError;
use crate::identifiers::domain::{Identifier, IdentifierKind, NewIdentifier, StoredIdentifier};
use crate::partner_sync::domain::PartnerSync;

pub fn subject_id(field: &str, value: &str) -> Result<Uuid, ProfilesError> {
    Uuid::parse_str(value).map_err(|_| ProfilesError::invalid(field, "not a subject id (a UUID)"))
}

pub fn identifier_from_proto(
    identifier: Option<&common::Identifier>,
    field: &str,
) -> Result<Identifier, ProfilesError> {
    let Some(identifier) = identifier else {
        return Err(ProfilesError::invalid(field, "is required"));
    };
    let kind = match common::IdentifierKind::try_from(identifier.kind) {
        Ok(common::IdentifierKind::Email) => IdentifierKind::Email,
        Ok(common::IdentifierKind::Phone) => IdentifierKind::Phone,
        Ok(common::IdentifierKind::LoyaltyNumber) => IdentifierKind::LoyaltyNumber,
        Ok(common::IdentifierKind::PartnerReference) => IdentifierKind::PartnerReference,
        Ok(common::IdentifierKind::Custom) => IdentifierKind::Custom,
        _ => {
            return Err(ProfilesError::invalid(
                format!("{field}.kind"),
                "an IDENTIFIER_KIND other than UNSPECIFIED",
            ));
        }
    };
    Identifier::new(
        kind,
        &identifier.value,
        &identifier.partner_id,
        &identifier.custom_type,
    )
    .map_err(|e| e.within(&format!("{field}.")))
}

pub fn new_identifier_from_proto(
    new: &pb::NewIdentifier,
    field: &str,
) -> Result<NewIdentifier, ProfilesError> {
    let identifier =
        identifier_from_proto(new.identifier.as_ref(), &format!("{field}.identifier"))?;
    let verified_at = new
        .verified_at
        .as_ref()
        .map(|at| {
            from_timestamp(at).ok_or_else(|| {
                ProfilesError::invalid(format!("{field}.verified_at"), "not a valid timestamp")
            })
        })
        .transpose()?;
    NewIdentifier::new(
        identifier,
        new.verified,
        verified_at,
        &new.verification_method,
    )
    .map_err(|e| e.within(&format!("{field}.")))
}

pub fn identifier_to_proto(identifier: &Identifier) -> common::Identifier {
    let kind = match identifier.kind {
        IdentifierKind::Email => common::IdentifierKind::Email,
        IdentifierKind::Phone => common::IdentifierKind::Phone,
        IdentifierKind::LoyaltyNumber => common::IdentifierKind::LoyaltyNumber,
        IdentifierKind::PartnerReference => common::IdentifierKind::PartnerReference,
        IdentifierKind::Custom => common::IdentifierKind::Custom,
    };
    common::Identifier {
        kind: kind.into(),
        value: identifier.value.expose().clone(),
        partner_id: identifier.partner_id.clone().unwrap_or_default(),
        custom_type: identifier.custom_type.clone().unwrap_or_default(),
    }
}

fn stored_identifier_to_proto(stored: &StoredIdentifier) -> pb::ProfileIdentifier {
    pb::ProfileIdentifier {
        identifier: Some(identifier_to_proto(&stored.identifier)),
        verified: stored.verified_at.is_some(),
        verified_at: to_timestamp_opt(stored.verified_at),
        verification_method: stored.verification_method.clone().unwrap_or_default(),
        source: stored.source.clone(),
        added_at: Some(to_timestamp(stored.added_at)),
    }
}

pub fn profile_to_proto(profile: &Profile) -> pb::Profile {
    pb::Profile {
        subject_id: profile.subject_id.to_string(),
        identifiers: profile
            .identifiers
            .iter()
            .map(stored_identifier_to_proto)
            .collect(),
        attributes: Some(attributes::to_proto(&profile.attributes)),
        created_at: Some(to_timestamp(profile.created_at)),
        updated_at: Some(to_timestamp(profile.updated_at)),
        restricted: profile.restricted,
        merged_subject_ids: profile
            .merged_subject_ids
            .iter()
            .map(Uuid::to_string)
            .collect(),
    }
}

pub fn subject_lookup(
    subject: Option<&common::SubjectRef>,
    field: &str,
) -> Result<SubjectLookup, ProfilesError> {
    match subject.and_then(|s| s.subject.as_ref()) {
        Some(common::subject_ref::Subject::SubjectId(id)) => Ok(SubjectLookup::Id(subject_id(
            &format!("{field}.subject_id"),
            id,
        )?)),
        Some(common::subject_ref::Subject::Identifier(identifier)) => {
            Ok(SubjectLookup::Identifier(identifier_from_proto(
                Some(identifier),
                &format!("{field}.identifier"),
            )?))
        }
        None => Err(ProfilesError::invalid(
            field,
            "a subject_id or an identifier is required",
        )),
    }
}

/// The ids a GetContacts request asks for (the domain checks how many).
fn contact_subjects(ids: &[String]) -> Result<Vec<Uuid>, ProfilesError> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| subject_id(&format!("subject_ids[{i}]"), id))
        .collect()
}

fn contact_to_proto(contact: Contact) -> pb::Contact {
    let mut out = pb::Contact {
        subject_id: contact.subject_id.to_string(),
        ..Default::default()
    };
    let Some(profile) = contact.profile else {
        return out;
    };
    let points = profile.points;
    out.found = true;
    out.merged_into = profile
        .merged_into
        .map(|id| id.to_string())
        .unwrap_or_default();
    out.restricted = profile.restricted;
    out.email = points.email.map(Secret::into_inner).unwrap_or_default();
    out.phone = points.phone.map(Secret::into_inner).unwrap_or_default();
    out.given_name = points
        .given_name
        .map(Secret::into_inner)
        .unwrap_or_default();
    out.locale = points.locale.unwrap_or_default();
    out.timezone = points.timezone.unwrap_or_default();
    out
}

fn new_identifiers(identifiers: &[pb::NewIdentifier]) -> Result<Vec<NewIdentifier>, ProfilesError> {
    identifiers
        .iter()
        .enumerate()
        .map(|(i, new)| new_identifier_from_proto(new, &format!("identifiers[{i}]")))
        .collect()
}

impl TryFrom<&pb::UpsertProfileRequest> for UpsertCommand {
    type Error = ProfilesError;

    fn try_from(request: &pb::UpsertProfileRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            identifiers: new_identifiers(&request.identifiers)?,
            changes: attributes::given(request.attributes.as_ref())?,
            source: check_source("source", &request.source)?,
            merge_if_needed: request.merge_if_needed,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ProfilesService {
    pub profiles: Arc<Profiles>,
    pub partners: Arc<PartnerSync>,
    pub feed: Arc<Feed>,
}

#[tonic::async_trait]
impl ProfilesApi for ProfilesService {
    async fn upsert_profile(
        &self,
        request: Request<pb::UpsertProfileRequest>,
    ) -> Result<Response<pb::UpsertProfileResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/UpsertProfile")?;
        let command = UpsertCommand::try_from(request.get_ref())?;
        let outcome = self.profiles.upsert(caller, command).await?;
        Ok(Response::new(pb::UpsertProfileResponse {
            profile: Some(profile_to_proto(&outcome.profile)),
            created: outcome.created,
            merged_subject_ids: outcome.merged.iter().map(Uuid::to_string).collect(),
        }))
    }

    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/GetProfile")?;
        let lookup = subject_lookup(request.get_ref().subject.as_ref(), "subject")?;
        let profile = if caller.partner().is_some() {
            self.partners.get(caller, lookup).await?
        } else {
            self.profiles.get(caller, lookup).await?
        };
        Ok(Response::new(pb::GetProfileResponse {
            profile: Some(profile_to_proto(&profile)),
        }))
    }

    async fn get_contacts(
        &self,
        request: Request<pb::GetContactsRequest>,
    ) -> Result<Response<pb::GetContactsResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/GetContacts")?;
        let subjects = contact_subjects(&request.get_ref().subject_ids)?;
        let contacts = self.profiles.contacts(caller, subjects).await?;
        Ok(Response::new(pb::GetContactsResponse {
            contacts: contacts.into_iter().map(contact_to_proto).collect(),
        }))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/UpdateProfile")?;
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        let changes = attributes::masked(body.attributes.as_ref(), body.update_mask.as_ref())?;
        let source = check_source("source", &body.source)?;
        let profile = self
            .profiles
            .update(caller, subject, changes, source)
            .await?;
        Ok(Response::new(pb::UpdateProfileResponse {
            profile: Some(profile_to_proto(&profile)),
        }))
    }

    async fn add_identifier(
        &self,
        request: Request<pb::AddIdentifierRequest>,
    ) -> Result<Response<pb::AddIdentifierResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/AddIdentifier")?;
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        let Some(new) = body.identifier.as_ref() else {
            return Err(ProfilesError::invalid("identifier", "is required").into());
        };
        let new = new_identifier_from_proto(new, "identifier")?;
        let source = check_source("source", &body.source)?;
        let profile = self
            .profiles
            .add_identifier(caller, subject, new, source)
            .await?;
        Ok(Response::new(pb::AddIdentifierResponse {
            profile: Some(profile_to_proto(&profile)),
        }))
    }

    async fn remove_identifier(
        &self,
        request: Request<pb::RemoveIdentifierRequest>,
    ) -> Result<Response<pb::RemoveIdentifierResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/RemoveIdentifier")?;
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        let identifier = identifier_from_proto(body.identifier.as_ref(), "identifier")?;
        let profile = self
            .profiles
            .remove_identifier(caller, subject, identifier)
            .await?;
        Ok(Response::new(pb::RemoveIdentifierResponse {
            profile: Some(profile_to_proto(&profile)),
        }))
    }

    async fn merge_profiles(
        &self,
        request: Request<pb::MergeProfilesRequest>,
    ) -> Result<Response<pb::MergeProfilesResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/MergeProfiles")?;
        let body = request.get_ref();
        let survivor = subject_id("subject_id", &body.subject_id)?;
        let merged = subject_id("merged_subject_id", &body.merged_subject_id)?;
        let profile = self
            .profiles
            .merge(caller, survivor, merged, body.reason.clone())
            .await?;
        Ok(Response::new(pb::MergeProfilesResponse {
            profile: Some(profile_to_proto(&profile)),
        }))
    }

    async fn list_profiles(
        &self,
        request: Request<pb::ListProfilesRequest>,
    ) -> Result<Response<pb::ListProfilesResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/ListProfiles")?;
        let page = Page::from_request(request.get_ref().page.as_ref())?;
        let (profiles, page) = self.profiles.list(caller, page).await?;
        Ok(Response::new(pb::ListProfilesResponse {
            profiles: profiles.iter().map(profile_to_proto).collect(),
            page: Some(page),
        }))
    }

    async fn define_attribute(
        &self,
        request: Request<pb::DefineAttributeRequest>,
    ) -> Result<Response<pb::DefineAttributeResponse>, Status> {
        let caller = Caller::of(&request, "Profiles/DefineAttribute")?;
        let Some(definition) = request.get_ref().definition.as_ref() else {
            return Err(ProfilesError::invalid("definition", "is required").into());
        };
        let definition = Definition::new(
            &definition.key,
            attributes::type_from_proto(definition.r#type)?,
            &definition.description,
        )?;
        let definition = self.profiles.define_attribute(caller, definition).await?;
        Ok(Response::new(pb::DefineAttributeResponse {
            definition: Some(attributes::definition_to_proto(definition)),
        }))
    }

    async fn list_attribute_definitions(
        &self,
        _request: Request<pb::ListAttributeDefinitionsRequest>,
    ) -> Result<Response<pb::ListAttributeDefinitionsResponse>, Status> {
        let definitions = self.profiles.list_definitions().await?;
        Ok(Response::new(pb::ListAttributeDefinitionsResponse {
            definitions: definitions
                .into_iter()
                .map(attributes::definition_to_proto)
                .collect(),
        }))
    }

    type WatchChangesStream = ChangeStream;

    async fn watch_changes(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let caller = Caller::of(&request, "Profiles/WatchChanges")?;
        caller.require_not_partner()?;
        let stream = self.feed.watch(request.get_ref())?;
        Ok(Response::new(stream))
    }
}
