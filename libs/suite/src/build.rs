//! Building each member on its database: its own settings with the suite's keys and peers
//! filled in, and an internal account at identity for its calls to the others.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ecrm_auth::Scopes;
use ecrm_crypto::Secret;
use ecrm_identity::{Identity, IdentityConfig};
use ecrm_platform::auth::AuthConfig;
use ecrm_platform::{ServiceContext, ServiceRoutes};
use tokio::net::TcpListener;

use crate::replica::Replica;
use crate::{FirstOperator, Member, MemberSettings, SuiteError, SuiteKeys};

/// The display name of the internal account each member gets, e.g. `ecrm up: profiles`: the
/// name `ecrm up` has always given them, so a database it ran on keeps one account per member.
const ACCOUNT_PREFIX: &str = "ecrm up: ";

/// The scopes of each member's internal account: what its own calls to the others need.
fn account_scopes(member: Member) -> Scopes {
    // One table with `ecrm-identity provision-accounts`, which deployments use: identity's own
    // account needs no scope (it reads its own keys).
    ecrm_identity::internal_account(member.name()).map_or(Scopes::empty(), |account| account.scopes)
}

/// What members need of each other while the suite starts: where each listens, and identity
/// once it runs.
#[derive(Default)]
pub(crate) struct Wiring {
    identity: Option<Identity>,
    urls: HashMap<Member, String>,
    /// Whether the members serve TLS: their URLs are then `https://`.
    tls: bool,
    /// The running suite these members replicate: its accounts are used, not made again.
    replica_of: Option<Replica>,
    /// What each member logged in with, for replicas of this suite.
    accounts: HashMap<Member, (String, Secret<String>)>,
}

impl Wiring {
    pub(crate) fn new(tls: bool, replica_of: Option<Replica>) -> Self {
        Self {
            tls,
            replica_of,
            ..Self::default()
        }
    }

    /// The internal account each member logged in with.
    pub(crate) fn take_accounts(&mut self) -> HashMap<Member, (String, Secret<String>)> {
        std::mem::take(&mut self.accounts)
    }

    /// Records where `member` listens; a wildcard address is reached on loopback.
    pub(crate) fn listens_on(&mut self, member: Member, addr: SocketAddr) {
        self.urls.insert(member, service_url(addr, self.tls));
    }

    /// Identity, once the suite has started, for later accounts.
    pub(crate) fn take_identity(&mut self) -> Option<Identity> {
        self.identity.take()
    }

    fn url(&self, member: Member) -> Option<String> {
        self.urls.get(&member).cloned()
    }

    /// How `member` verifies its callers: identity's keys, read with an internal account
    /// provisioned for it now (fresh credentials each start, none stored), or the account of
    /// the member it replicates.
    async fn auth_for(&mut self, member: Member) -> Result<AuthConfig, SuiteError> {
        let (Some(identity), Some(url)) = (&self.identity, self.urls.get(&Member::Identity)) else {
            return Err(SuiteError::NoIdentity(member.name()));
        };
        let replicated = self
            .replica_of
            .as_ref()
            .and_then(|replica| replica.account(member))
            .cloned();
        let (client_id, secret) = match replicated {
            Some(account) => account,
            None => {
                identity
                    .provision_internal_account(
                        &format!("{ACCOUNT_PREFIX}{}", member.name()),
                        account_scopes(member),
                    )
                    .await?
            }
        };
        let auth = AuthConfig::new(url, &client_id, secret.expose());
        self.accounts.insert(member, (client_id, secret));
        Ok(auth)
    }
}

/// `http://` and the address, a wildcard one replaced by loopback.
pub(crate) fn loopback_url(addr: SocketAddr) -> String {
    service_url(addr, false)
}

/// [`loopback_url`], or `https://` and the address when `tls`.
pub(crate) fn service_url(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// What building a member needs beyond its database.
pub(crate) struct Inputs<'a> {
    pub keys: &'a SuiteKeys,
    pub bootstrap_password: Option<&'a Secret<String>>,
    pub settings: &'a MemberSettings,
    pub delivery: &'a ecrm_outbound::DeliveryConfig,
    /// Outbound's unsubscribe pages: the listener, taken when it is built, and the public
    /// address of the links.
    pub outbound_http: &'a mut Option<TcpListener>,
    pub public_url: &'a str,
}

/// Builds `member` on `context`; identity's first operator, when this start created it.
pub(crate) async fn build(
    member: Member,
    context: ServiceContext,
    inputs: Inputs<'_>,
    wiring: &mut Wiring,
) -> Result<(ServiceRoutes, Option<FirstOperator>), SuiteError> {
    let settings = inputs.settings;
    match member {
        Member::Identity => {
            let mut config = IdentityConfig::new(inputs.keys.identity.clone());
            settings.apply_identity(&mut config);
            let identity = Identity::new(context, config).await?;
            let password = inputs.bootstrap_password.cloned();
            let generated = password.is_none();
            let first = identity
                .bootstrap_admin(password)
                .await?
                .map(|(username, password)| FirstOperator {
                    username,
                    password,
                    generated,
                });
            let routes = identity.routes();
            wiring.identity = Some(identity);
            Ok((routes, first))
        }
        Member::Profiles => {
            let auth = wiring.auth_for(member).await?;
            let mut config = ecrm_profiles::ProfilesConfig {
                consent_url: wiring.url(Member::Consent),
                ..ecrm_profiles::ProfilesConfig::new(inputs.keys.profiles.clone())
            };
            settings.apply_profiles(&mut config);
            Ok((ecrm_profiles::build(context, config, auth).await?, None))
        }
        Member::Consent => {
            let auth = wiring.auth_for(member).await?;
            let personal_data = [
                Member::Profiles,
                Member::Consent,
                Member::Segmentation,
                Member::Outbound,
            ]
            .into_iter()
            .filter_map(|peer| Some(format!("{peer}={}", wiring.url(peer)?)))
            .collect();
            let mut config = ecrm_consent::ConsentConfig {
                profiles_url: wiring.url(Member::Profiles),
                outbound_url: wiring.url(Member::Outbound),
                personal_data,
                ..ecrm_consent::ConsentConfig::new(inputs.keys.consent.clone())
            };
            settings.apply_consent(&mut config);
            Ok((ecrm_consent::build(context, config, auth).await?, None))
        }
        Member::Segmentation => {
            let auth = wiring.auth_for(member).await?;
            let mut config = ecrm_segmentation::SegmentationConfig {
                profiles_url: wiring.url(Member::Profiles),
                consent_url: wiring.url(Member::Consent),
                ..ecrm_segmentation::SegmentationConfig::new()
            };
            settings.apply_segmentation(&mut config);
            Ok((ecrm_segmentation::build(context, config, auth).await?, None))
        }
        Member::Outbound => {
            let auth = wiring.auth_for(member).await?;
            let mut config = ecrm_outbound::OutboundConfig {
                consent_url: wiring.url(Member::Consent),
                profiles_url: wiring.url(Member::Profiles),
                segmentation_url: wiring.url(Member::Segmentation),
                delivery: inputs.delivery.clone(),
                ..ecrm_outbound::OutboundConfig::new(inputs.keys.outbound.clone())
            };
            config.unsubscribe.public_url = inputs.public_url.to_owned();
            settings.apply_outbound(&mut config);
            let Some(http) = inputs.outbound_http.take() else {
                return Err(SuiteError::Outbound(ecrm_outbound::OutboundError::invalid(
                    "--http-addr",
                    "the unsubscribe pages' listener was used already",
                )));
            };
            config.unsubscribe.http_addr =
                http.local_addr().map_err(|source| SuiteError::Bind {
                    service: OUTBOUND_HTTP,
                    addr: config.unsubscribe.http_addr,
                    source,
                })?;
            Ok((
                ecrm_outbound::build_with_http(context, config, auth, http).await?,
                None,
            ))
        }
    }
}

/// How the unsubscribe pages are named in errors.
pub(crate) const OUTBOUND_HTTP: &str = "outbound's unsubscribe pages";

#[cfg(test)]
mod tests {
    use super::*;
    use ecrm_auth::Scope;

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        let url = |addr: &str| loopback_url(addr.parse().unwrap());
        assert_eq!(url("0.0.0.0:50051"), "http://127.0.0.1:50051");
        assert_eq!(url("[::]:50051"), "http://[::1]:50051");
        assert_eq!(url("10.0.0.7:50052"), "http://10.0.0.7:50052");
    }

    #[test]
    fn only_consent_may_carry_out_data_subject_requests() {
        for member in Member::ALL {
            assert_eq!(
                account_scopes(member).contains(Scope::PrivacyExecute),
                member == Member::Consent,
                "{member}"
            );
        }
    }
}
