//! What every RPC of the suite requires of its caller. Fails closed: a method this table does
//! not list is refused to everyone, and a test walks every method of every contract to make
//! sure none is missing.

use crate::scope::Scope;

/// What a method requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: health, reflection, the token endpoint (its credentials are the proof), ending
    /// a session (its refresh token is) and the public keys (a verifier needs them before it
    /// can check any token).
    Open,
    /// Any valid token; the handler decides further (e.g. revoking one's own token).
    Authenticated,
    /// A valid token carrying this scope.
    Scope(Scope),
}

/// Services open to every caller: probes and tooling.
const OPEN_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// `service/method` (fully qualified service name) and what it requires.
const METHODS: &[(&str, Access)] = &[
    // ecrm.identity.v1
    ("ecrm.identity.v1.Tokens/IssueToken", Access::Open),
    ("ecrm.identity.v1.Tokens/EndSession", Access::Open),
    ("ecrm.identity.v1.Tokens/RevokeToken", Access::Authenticated),
    ("ecrm.identity.v1.Tokens/GetJwks", Access::Open),
    (
        "ecrm.identity.v1.Tokens/ListRevocations",
        Access::Authenticated,
    ),
    (
        "ecrm.identity.v1.ServiceAccounts/CreateServiceAccount",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.ServiceAccounts/GetServiceAccount",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.ServiceAccounts/ListServiceAccounts",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.ServiceAccounts/AddSecret",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.ServiceAccounts/RemoveSecret",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.ServiceAccounts/DisableServiceAccount",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.Operators/CreateOperator",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.Operators/ListOperators",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.Operators/SetPassword",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.Operators/DisableOperator",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.SigningKeys/RotateSigningKeys",
        Access::Scope(Scope::IdentityAdmin),
    ),
    (
        "ecrm.identity.v1.SigningKeys/ListSigningKeys",
        Access::Scope(Scope::IdentityAdmin),
    ),
    // ecrm.profiles.v1: partners are further limited by the handlers to their own subjects.
    (
        "ecrm.profiles.v1.Profiles/UpsertProfile",
        Access::Scope(Scope::ProfilesWrite),
    ),
    (
        "ecrm.profiles.v1.Profiles/GetProfile",
        Access::Scope(Scope::ProfilesRead),
    ),
    (
        "ecrm.profiles.v1.Profiles/GetContacts",
        Access::Scope(Scope::ProfilesRead),
    ),
    (
        "ecrm.profiles.v1.Profiles/UpdateProfile",
        Access::Scope(Scope::ProfilesWrite),
    ),
    (
        "ecrm.profiles.v1.Profiles/AddIdentifier",
        Access::Scope(Scope::ProfilesWrite),
    ),
    (
        "ecrm.profiles.v1.Profiles/RemoveIdentifier",
        Access::Scope(Scope::ProfilesWrite),
    ),
    (
        "ecrm.profiles.v1.Profiles/MergeProfiles",
        Access::Scope(Scope::ProfilesWrite),
    ),
    (
        "ecrm.profiles.v1.Profiles/ListProfiles",
        Access::Scope(Scope::ProfilesRead),
    ),
    (
        "ecrm.profiles.v1.Profiles/DefineAttribute",
        Access::Scope(Scope::ProfilesWrite),
    ),
    (
        "ecrm.profiles.v1.Profiles/ListAttributeDefinitions",
        Access::Scope(Scope::ProfilesRead),
    ),
    (
        "ecrm.profiles.v1.Profiles/WatchChanges",
        Access::Scope(Scope::ProfilesRead),
    ),
    (
        "ecrm.profiles.v1.Interactions/RecordInteractions",
        Access::Scope(Scope::EventsWrite),
    ),
    (
        "ecrm.profiles.v1.Interactions/ListInteractions",
        Access::Scope(Scope::ProfilesRead),
    ),
    (
        "ecrm.profiles.v1.PartnerSync/UpsertPartnerProfile",
        Access::Scope(Scope::ProfilesWrite),
    ),
    (
        "ecrm.profiles.v1.PartnerSync/PullChanges",
        Access::Scope(Scope::ProfilesRead),
    ),
    (
        "ecrm.profiles.v1.PartnerSync/PullNotices",
        Access::Scope(Scope::ProfilesRead),
    ),
    (
        "ecrm.profiles.v1.PartnerSync/AcknowledgeNotices",
        Access::Scope(Scope::ProfilesRead),
    ),
    // ecrm.segmentation.v1
    (
        "ecrm.segmentation.v1.Rfm/ComputeRfm",
        Access::Scope(Scope::SegmentsWrite),
    ),
    (
        "ecrm.segmentation.v1.Rfm/GetRfmJob",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Rfm/GetRfm",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Rfm/RfmSummary",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Segments/DefineSegment",
        Access::Scope(Scope::SegmentsWrite),
    ),
    (
        "ecrm.segmentation.v1.Segments/ListSegments",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Segments/IsMember",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Segments/ExplainMembership",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Segments/GetMembers",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Segments/WatchMembership",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Tiers/DefineTierProgram",
        Access::Scope(Scope::SegmentsWrite),
    ),
    (
        "ecrm.segmentation.v1.Tiers/ListTierPrograms",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Tiers/GetTier",
        Access::Scope(Scope::SegmentsRead),
    ),
    (
        "ecrm.segmentation.v1.Kpis/GetKpis",
        Access::Scope(Scope::SegmentsRead),
    ),
    // ecrm.outbound.v1
    (
        "ecrm.outbound.v1.Templates/UpsertTemplate",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Templates/PreviewTemplate",
        Access::Scope(Scope::OutboundSend),
    ),
    (
        "ecrm.outbound.v1.Templates/ListTemplates",
        Access::Scope(Scope::OutboundSend),
    ),
    (
        "ecrm.outbound.v1.Suppressions/AddSuppression",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Suppressions/RemoveSuppression",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Suppressions/ListSuppressions",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Messages/SendTransactional",
        Access::Scope(Scope::OutboundSend),
    ),
    (
        "ecrm.outbound.v1.Messages/GetMessage",
        Access::Scope(Scope::OutboundSend),
    ),
    (
        "ecrm.outbound.v1.Messages/ListMessages",
        Access::Scope(Scope::OutboundSend),
    ),
    (
        "ecrm.outbound.v1.Campaigns/CreateCampaign",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Campaigns/AddCampaignRecipients",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Campaigns/StartCampaign",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Campaigns/PauseCampaign",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Campaigns/ResumeCampaign",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Campaigns/CancelCampaign",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Campaigns/GetCampaign",
        Access::Scope(Scope::OutboundManage),
    ),
    (
        "ecrm.outbound.v1.Campaigns/GetCampaignStats",
        Access::Scope(Scope::OutboundManage),
    ),
    // ecrm.consent.v1
    (
        "ecrm.consent.v1.Purposes/DefinePurpose",
        Access::Scope(Scope::ConsentWrite),
    ),
    (
        "ecrm.consent.v1.Purposes/GetPurpose",
        Access::Scope(Scope::ConsentRead),
    ),
    (
        "ecrm.consent.v1.Purposes/ListPurposes",
        Access::Scope(Scope::ConsentRead),
    ),
    (
        "ecrm.consent.v1.Purposes/PublishNotice",
        Access::Scope(Scope::ConsentWrite),
    ),
    (
        "ecrm.consent.v1.Consents/RecordConsent",
        Access::Scope(Scope::ConsentWrite),
    ),
    (
        "ecrm.consent.v1.Consents/GetConsentState",
        Access::Scope(Scope::ConsentRead),
    ),
    (
        "ecrm.consent.v1.Consents/CheckConsent",
        Access::Scope(Scope::ConsentRead),
    ),
    (
        "ecrm.consent.v1.Consents/ListConsentHistory",
        Access::Scope(Scope::ConsentRead),
    ),
    // A full scan: for compliance officers, not every reader of consent.
    (
        "ecrm.consent.v1.Consents/VerifyLedger",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.Consents/TakeCheckpoint",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.Consents/WatchConsentChanges",
        Access::Scope(Scope::ConsentRead),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/SubmitRequest",
        Access::Scope(Scope::DsrSubmit),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/VerifyRequester",
        Access::Scope(Scope::DsrManage),
    ),
    // The requester's own proof, relayed by whoever took the request (a web form).
    (
        "ecrm.consent.v1.DataSubjectRequests/ConfirmRequester",
        Access::Scope(Scope::DsrSubmit),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/ResendVerificationCode",
        Access::Scope(Scope::DsrSubmit),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/ApproveRequest",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/RejectRequest",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/ExtendDeadline",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/CompleteRequest",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/GetRequest",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/ListRequests",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/GetExport",
        Access::Scope(Scope::DsrManage),
    ),
    (
        "ecrm.consent.v1.DataSubjectRequests/GetErasureCertificate",
        Access::Scope(Scope::DsrManage),
    ),
    // ecrm.privacy.v1: only the data subject request orchestrator.
    (
        "ecrm.privacy.v1.PersonalData/Describe",
        Access::Scope(Scope::PrivacyExecute),
    ),
    (
        "ecrm.privacy.v1.PersonalData/Export",
        Access::Scope(Scope::PrivacyExecute),
    ),
    (
        "ecrm.privacy.v1.PersonalData/Erase",
        Access::Scope(Scope::PrivacyExecute),
    ),
    (
        "ecrm.privacy.v1.PersonalData/Restrict",
        Access::Scope(Scope::PrivacyExecute),
    ),
    (
        "ecrm.privacy.v1.PersonalData/Rectify",
        Access::Scope(Scope::PrivacyExecute),
    ),
];

/// What the gRPC `path` (`/package.Service/Method`) requires; `None` when the method is not
/// listed, which must be refused.
pub fn access(path: &str) -> Option<Access> {
    let path = path.strip_prefix('/')?;
    let (service, _method) = path.split_once('/')?;
    if OPEN_SERVICES.contains(&service) {
        return Some(Access::Open);
    }
    METHODS
        .iter()
        .find(|(listed, _)| *listed == path)
        .map(|(_, access)| *access)
}

/// Every listed method, for tests and documentation.
pub fn listed() -> impl Iterator<Item = (&'static str, Access)> {
    METHODS.iter().copied()
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::*;

    #[test]
    fn every_method_of_every_contract_has_an_entry() {
        let set = FileDescriptorSet::decode(ecrm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut missing = Vec::new();
        let mut seen = 0;
        for file in set.file.iter().filter(|f| f.package().starts_with("ecrm.")) {
            for service in &file.service {
                for method in &service.method {
                    seen += 1;
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    if access(&path).is_none() {
                        missing.push(path);
                    }
                }
            }
        }
        assert!(seen > 0, "no ecrm method found in the descriptors");
        assert!(
            missing.is_empty(),
            "methods with no access entry: {missing:#?}"
        );
    }

    #[test]
    fn every_entry_names_a_method_that_exists() {
        let set = FileDescriptorSet::decode(ecrm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let existing: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| {
                f.service.iter().flat_map(move |s| {
                    s.method
                        .iter()
                        .map(move |m| format!("{}.{}/{}", f.package(), s.name(), m.name()))
                })
            })
            .collect();
        for (path, _) in listed() {
            assert!(existing.iter().any(|e| e == path), "{path} is not a method");
        }
    }

    #[test]
    fn unlisted_and_malformed_paths_have_no_access() {
        assert_eq!(access("/ecrm.identity.v1.Tokens/Nope"), None);
        assert_eq!(access("/ecrm.other.v1.Thing/Do"), None);
        assert_eq!(access("ecrm.identity.v1.Tokens/IssueToken"), None);
        assert_eq!(access("/"), None);
        assert_eq!(access("/grpc.health.v1.Health/Check"), Some(Access::Open));
        assert_eq!(
            access("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Some(Access::Open)
        );
    }
}
