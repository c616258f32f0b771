//! The authorization matrix: every RPC of every contract, read from the descriptors, called on
//! the running suite by each kind of principal, with and without the method's scope, each with
//! a real token from identity. What each call must answer is derived from the method's access
//! (`ecrm_auth::methods`) and the principal's scopes; the few refusals a handler adds on top
//! (by kind of principal) are listed in [`handler_refusals`] with their reason.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use ecrm_auth::{Access, OperatorRole, PrincipalKind, Scopes};
use ecrm_proto::ecrm::identity::v1 as pb;
use ecrm_proto::ecrm::identity::v1::operators_client::OperatorsClient;
use ecrm_proto::ecrm::identity::v1::service_accounts_client::ServiceAccountsClient;
use ecrm_proto::ecrm::identity::v1::tokens_client::TokensClient;
use ecrm_suite::Member;
use futures::StreamExt as _;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::raw::{self, Method, call};
use crate::support::{Journey, authorized, logs};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Who {
    Nobody,
    /// An internal service account holding every scope, its token carrying all of them.
    Internal,
    /// The same account, its token carrying every scope but the one the method needs.
    InternalWithoutScope,
    PartnerA,
    PartnerB,
    Operator(OperatorRole),
}

impl Who {
    const ALL: [Who; 8] = [
        Who::Nobody,
        Who::Internal,
        Who::InternalWithoutScope,
        Who::PartnerA,
        Who::PartnerB,
        Who::Operator(OperatorRole::Admin),
        Who::Operator(OperatorRole::ComplianceOfficer),
        Who::Operator(OperatorRole::Marketer),
    ];

    fn kind(self) -> Option<PrincipalKind> {
        match self {
            Who::Nobody => None,
            Who::Internal | Who::InternalWithoutScope => Some(PrincipalKind::Internal),
            Who::PartnerA | Who::PartnerB => Some(PrincipalKind::Partner),
            Who::Operator(_) => Some(PrincipalKind::Operator),
        }
    }

    /// The scopes its token for `method` carries.
    pub(crate) fn scopes(self, access: Access) -> Scopes {
        match self {
            Who::Nobody => Scopes::empty(),
            Who::Internal => Scopes::all(),
            Who::InternalWithoutScope => match access {
                Access::Scope(scope) => Scopes::all().without(Scopes::empty().with(scope)),
                Access::Open | Access::Authenticated => Scopes::all(),
            },
            Who::PartnerA | Who::PartnerB => PrincipalKind::Partner.grantable(),
            Who::Operator(role) => role.scopes(),
        }
    }
}

/// What a call must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// Past authorization: whatever the handler makes of an empty request, but neither
    /// UNAUTHENTICATED nor PERMISSION_DENIED.
    Through,
    Refused(Code),
}

/// Refusals handlers add for kinds of principal the scope table lets through, and why.
fn handler_refusals(path: &str, who: Who) -> Option<&'static str> {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or_default();
    let kind = who.kind()?;
    match (service, method, kind) {
        (
            "ecrm.consent.v1.Purposes"
            | "ecrm.consent.v1.Consents"
            | "ecrm.consent.v1.DataSubjectRequests",
            _,
            PrincipalKind::Partner,
        ) => Some("which subjects a partner may speak for is not asked of profiles yet"),
        ("ecrm.profiles.v1.Profiles", "GetContacts", PrincipalKind::Partner) => {
            Some("contacts are for the suite's own services, not partners")
        }
        ("ecrm.profiles.v1.Profiles", "ListProfiles" | "WatchChanges", PrincipalKind::Partner) => {
            Some("partners reach their customers through PartnerSync, one at a time")
        }
        ("ecrm.profiles.v1.PartnerSync", _, PrincipalKind::Internal | PrincipalKind::Operator) => {
            Some("PartnerSync is for partners' service accounts")
        }
        (
            "ecrm.identity.v1.Tokens",
            "ListRevocations",
            PrincipalKind::Partner | PrincipalKind::Operator,
        ) => Some("revocations are for the suite's internal services"),
        _ => None,
    }
}

fn expected(method: &Method, who: Who) -> Expected {
    let access = ecrm_auth::methods::access(&method.path)
        .unwrap_or_else(|| panic!("{} is not in the access table", method.path));
    match (access, who) {
        (Access::Open, _) => Expected::Through,
        (_, Who::Nobody) => Expected::Refused(Code::Unauthenticated),
        (Access::Scope(scope), _) if !who.scopes(access).contains(scope) => {
            Expected::Refused(Code::PermissionDenied)
        }
        _ if handler_refusals(&method.path, who).is_some() => {
            Expected::Refused(Code::PermissionDenied)
        }
        _ => Expected::Through,
    }
}

/// How a principal proves who it is at identity.
#[derive(Clone)]
pub(crate) enum Grant {
    Client { client_id: String, secret: String },
    Operator { username: String, password: String },
}

/// Asks identity for a token for `member` carrying `scopes`.
pub(crate) async fn issue(
    identity: Channel,
    grant: &Grant,
    member: Member,
    scopes: Scopes,
) -> String {
    let grant = match grant.clone() {
        Grant::Client { client_id, secret } => {
            pb::issue_token_request::Grant::ClientCredentials(pb::ClientCredentials {
                client_id,
                client_secret: secret,
            })
        }
        Grant::Operator { username, password } => {
            pb::issue_token_request::Grant::OperatorPassword(pb::OperatorPassword {
                username,
                password,
            })
        }
    };
    let token = TokensClient::new(identity)
        .issue_token(pb::IssueTokenRequest {
            grant: Some(grant),
            scopes: scopes.names(),
            audience: member.name().to_owned(),
            start_session: false,
        })
        .await
        .unwrap_or_else(|status| panic!("no token for {member}: {status:?}"))
        .into_inner()
        .access_token;
    logs::forbid(token.clone());
    token
}

/// Creates the principals of the matrix at identity, as an admin does.
pub(crate) async fn grants(journey: &Journey) -> HashMap<Who, Grant> {
    let identity = journey.channel(Member::Identity);
    let admin = journey.admin.token(Member::Identity).await;
    let mut grants = HashMap::new();
    let accounts = [
        (
            Who::Internal,
            pb::PrincipalKind::Internal,
            "",
            Scopes::all(),
        ),
        (
            Who::PartnerA,
            pb::PrincipalKind::Partner,
            "airline-a",
            PrincipalKind::Partner.grantable(),
        ),
        (
            Who::PartnerB,
            pb::PrincipalKind::Partner,
            "airline-b",
            PrincipalKind::Partner.grantable(),
        ),
    ];
    for (who, kind, partner_id, scopes) in accounts {
        let created = ServiceAccountsClient::new(identity.clone())
            .create_service_account(authorized(
                &admin,
                pb::CreateServiceAccountRequest {
                    display_name: format!("matrix {who:?}"),
                    kind: kind.into(),
                    partner_id: partner_id.to_owned(),
                    scopes: scopes.names(),
                    secret_expires_at: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        logs::forbid(created.client_secret.clone());
        grants.insert(
            who,
            Grant::Client {
                client_id: created.account.unwrap().client_id,
                secret: created.client_secret,
            },
        );
    }
    grants.insert(Who::InternalWithoutScope, grants[&Who::Internal].clone());
    for role in OperatorRole::ALL {
        let username = format!("matrix-{}", role.as_str().replace('_', "-"));
        let password = format!("{username}-password-long-enough");
        logs::forbid(password.clone());
        let proto_role = match role {
            OperatorRole::Admin => pb::OperatorRole::Admin,
            OperatorRole::ComplianceOfficer => pb::OperatorRole::ComplianceOfficer,
            OperatorRole::Marketer => pb::OperatorRole::Marketer,
        };
        OperatorsClient::new(identity.clone())
            .create_operator(authorized(
                &admin,
                pb::CreateOperatorRequest {
                    username: username.clone(),
                    password: password.clone(),
                    roles: vec![proto_role.into()],
                },
            ))
            .await
            .unwrap();
        grants.insert(Who::Operator(role), Grant::Operator { username, password });
    }
    grants
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_answers_each_kind_of_principal_as_its_access_and_scopes_say() {
    let journey = Journey::start().await;
    let grants = grants(&journey).await;
    let identity = journey.channel(Member::Identity);
    let methods = raw::methods();
    assert!(methods.len() > 50, "only {} methods found", methods.len());

    // A token for each (principal, member, scopes), asked for once.
    let mut tokens: HashMap<(Who, Member, Scopes), String> = HashMap::new();
    let mut cases = Vec::new();
    for method in &methods {
        let access = ecrm_auth::methods::access(&method.path).unwrap();
        for who in Who::ALL {
            let token = match who {
                Who::Nobody => None,
                _ => {
                    let scopes = who.scopes(access);
                    let token = match tokens.entry((who, method.member, scopes)) {
                        Entry::Occupied(entry) => entry.into_mut(),
                        Entry::Vacant(entry) => entry.insert(
                            issue(identity.clone(), &grants[&who], method.member, scopes).await,
                        ),
                    };
                    Some(token.clone())
                }
            };
            cases.push((method.clone(), who, token));
        }
    }

    let answers: Vec<(Method, Who, Code)> = futures::stream::iter(cases)
        .map(|(method, who, token)| {
            let channel = journey.channel(method.member);
            async move {
                let code = call(channel, &method, token.as_deref(), Vec::new())
                    .await
                    .code();
                (method, who, code)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut wrong = Vec::new();
    for (method, who, code) in &answers {
        let fits = match expected(method, *who) {
            Expected::Through => !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
            Expected::Refused(expected) => *code == expected,
        };
        if !fits {
            wrong.push(format!(
                "{} at {}: {who:?} got {code:?}, expected {:?}",
                method.path,
                method.member,
                expected(method, *who)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} calls answered otherwise:\n{}",
        wrong.len(),
        answers.len(),
        wrong.join("\n")
    );
    journey.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_asking_for_another_partners_customer_is_told_it_does_not_exist() {
    use ecrm_proto::ecrm::profiles::v1 as profiles;
    use ecrm_proto::ecrm::profiles::v1::interactions_client::InteractionsClient;
    use ecrm_proto::ecrm::profiles::v1::partner_sync_client::PartnerSyncClient;
    use ecrm_proto::ecrm::profiles::v1::profiles_client::ProfilesClient;

    use crate::support::customers::by_id;
    use crate::support::reading;

    let journey = Journey::start().await;
    let grants = grants(&journey).await;
    let identity = journey.channel(Member::Identity);
    let scopes = PrincipalKind::Partner.grantable();
    let token_a = issue(
        identity.clone(),
        &grants[&Who::PartnerA],
        Member::Profiles,
        scopes,
    )
    .await;
    let token_b = issue(identity, &grants[&Who::PartnerB], Member::Profiles, scopes).await;
    let channel = journey.channel(Member::Profiles);
    let subject = PartnerSyncClient::new(channel.clone())
        .upsert_partner_profile(authorized(
            &token_a,
            profiles::UpsertPartnerProfileRequest {
                external_id: "PNR-1".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .subject_id;

    let get = |token: String| {
        let mut client = ProfilesClient::new(channel.clone());
        let subject = by_id(&subject);
        async move {
            client
                .get_profile(reading(
                    &token,
                    "partner_sharing",
                    profiles::GetProfileRequest {
                        subject: Some(subject),
                    },
                ))
                .await
                .map(drop)
        }
    };
    let list = |token: String| {
        let mut client = InteractionsClient::new(channel.clone());
        let subject_id = subject.clone();
        async move {
            client
                .list_interactions(reading(
                    &token,
                    "partner_sharing",
                    profiles::ListInteractionsRequest {
                        subject_id,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop)
        }
    };
    get(token_a.clone()).await.unwrap();
    list(token_a).await.unwrap();
    assert_eq!(
        get(token_b.clone()).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(list(token_b).await.unwrap_err().code(), Code::NotFound);
    journey.stop().await;
}
