//! The whole eCRM suite in one process: every service provisioned and migrated in one
//! PostgreSQL database, given its internal account at identity, wired to the others and
//! served on its own port. `ecrm up` runs it for people; end-to-end tests run it in-process.
//!
//! ```no_run
//! # async fn demo(admin_url: ecrm_platform::DatabaseUrl) -> Result<(), Box<dyn std::error::Error>> {
//! use ecrm_suite::{Member, Suite, SuiteKeys, SuiteOptions};
//!
//! let suite = Suite::start(SuiteOptions::new(admin_url, SuiteKeys::generate()?)).await?;
//! let profiles = suite.url(Member::Profiles);
//! // ... call the services ...
//! suite.stop().await?;
//! # Ok(()) }
//! ```

mod build;
mod database;
pub mod demo;
mod error;
mod keys;
mod members;
mod replica;
mod settings;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ecrm_crypto::Secret;
use ecrm_platform::config::ShutdownConfig;
use ecrm_platform::db::PoolOptions;
use ecrm_platform::tls::Tls;
use ecrm_platform::{DatabaseUrl, Db, RunningServer, ServiceContext};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::build::{Inputs, OUTBOUND_HTTP, Wiring, loopback_url, service_url};
pub use crate::database::{DEFAULT_ROLE_PREFIX, drop_roles};
pub use crate::error::SuiteError;
pub use crate::keys::SuiteKeys;
pub use crate::members::{Member, UnknownMember};
pub use crate::replica::Replica;
pub use crate::settings::MemberSettings;

/// Where the services listen, on [`SuiteOptions::host`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// A free port each, chosen by the system: several suites can run side by side.
    Ephemeral,
    /// This port for identity, and the following ones for the others in [`Member::ALL`]
    /// order (50051 to 50055 for 50051).
    Base(u16),
}

impl Ports {
    /// `member`'s port; 0 for a free one.
    pub fn port(self, member: Member) -> Result<u16, SuiteError> {
        match self {
            Ports::Ephemeral | Ports::Base(0) => Ok(0),
            Ports::Base(base) => base
                .checked_add(member.port_offset())
                .ok_or(SuiteError::BasePort(base)),
        }
    }
}

/// How outbound sends, and where its one-click unsubscribe pages are.
#[derive(Debug, Clone)]
pub struct OutboundOptions {
    /// Its channels (SMTP relay, SMS and webhook providers). None configured: nothing is sent,
    /// and messages fail with the channel not configured.
    pub delivery: ecrm_outbound::DeliveryConfig,
    /// Where the unsubscribe pages listen; port 0 for a free one.
    pub http_addr: SocketAddr,
    /// The public base of the links put in messages; unset: `http://` and the address the
    /// pages listen on.
    pub public_url: Option<String>,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        Self {
            delivery: ecrm_outbound::DeliveryConfig::default(),
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            public_url: None,
        }
    }
}

/// The operator identity creates when it has none yet.
#[derive(Clone)]
pub struct FirstOperator {
    pub username: String,
    pub password: Secret<String>,
    /// True when the password was generated (and exists nowhere else), false when it was
    /// [`SuiteOptions::bootstrap_password`].
    pub generated: bool,
}

impl std::fmt::Debug for FirstOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstOperator")
            .field("username", &self.username)
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

/// Told of the first operator once it exists; see [`SuiteOptions::on_first_operator`].
pub type FirstOperatorHook = Box<dyn FnOnce(&FirstOperator) + Send>;

/// Everything the suite is started with. [`SuiteOptions::new`] gives the defaults.
pub struct SuiteOptions {
    /// A URL to the suite's database as a role that may create roles and schemas (a superuser,
    /// or one with CREATEROLE).
    pub admin_url: DatabaseUrl,
    /// Each member connects as `<prefix>_<schema>`, with a fresh password each start. Roles
    /// are cluster-wide: suites in several databases of one server at once need a prefix
    /// each, or they reset each other's passwords (see [`drop_roles`] for afterwards).
    pub role_prefix: String,
    /// The address every service listens on.
    pub host: IpAddr,
    pub ports: Ports,
    pub keys: SuiteKeys,
    /// The first operator's (`admin`) password, when identity has no operator yet; unset: one
    /// is generated, and given once to [`SuiteOptions::on_first_operator`].
    pub bootstrap_password: Option<Secret<String>>,
    pub outbound: OutboundOptions,
    pub settings: MemberSettings,
    /// Each member's connection pool.
    pub pool: PoolOptions,
    /// How each member's server stops.
    pub shutdown_config: ShutdownConfig,
    /// Called as soon as identity has created the first operator, before the other members
    /// start: a later failure must not lose a password shown once.
    pub on_first_operator: Option<FirstOperatorHook>,
    /// TLS of every member: served when it has a certificate (mutual when it names client
    /// CAs), and used by the members' calls to each other. Default: plaintext.
    pub tls: Tls,
    /// Start replicas of the members of a running suite ([`Suite::replica`]) on its database:
    /// its roles and accounts, no bootstrap. Default: a suite of its own.
    pub replica_of: Option<Replica>,
    /// Cancelling it stops the suite, or its start.
    pub shutdown: CancellationToken,
}

impl SuiteOptions {
    /// The suite in `admin_url`'s database with `keys`, on free ports of 127.0.0.1, with the
    /// default roles, no outbound channel and each service's default settings.
    pub fn new(admin_url: DatabaseUrl, keys: SuiteKeys) -> Self {
        Self {
            admin_url,
            role_prefix: DEFAULT_ROLE_PREFIX.to_owned(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: Ports::Ephemeral,
            keys,
            bootstrap_password: None,
            outbound: OutboundOptions::default(),
            settings: MemberSettings::default(),
            pool: PoolOptions::default(),
            // Nothing routes to an in-process suite but its user: stop at once, still
            // draining calls.
            shutdown_config: ShutdownConfig {
                grace: Duration::ZERO,
                drain_timeout: Duration::from_secs(10),
            },
            on_first_operator: None,
            tls: Tls::default(),
            replica_of: None,
            shutdown: CancellationToken::new(),
        }
    }
}

impl std::fmt::Debug for SuiteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuiteOptions")
            .field("admin_url", &self.admin_url)
            .field("role_prefix", &self.role_prefix)
            .field("host", &self.host)
            .field("ports", &self.ports)
            .field("outbound", &self.outbound)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A member serving.
#[derive(Debug)]
struct Running {
    member: Member,
    server: RunningServer,
}

/// The suite, running: every member serving until [`Suite::stop`], the options' shutdown
/// token, or the value's drop.
#[derive(Debug)]
pub struct Suite {
    running: Vec<Running>,
    addrs: [SocketAddr; 5],
    unsubscribe_addr: SocketAddr,
    public_url: String,
    /// How clients of the suite reach it: `https://` URLs when the members serve TLS.
    tls: Tls,
    /// What each member connects and logs in with, for replicas.
    replica: Replica,
    first_operator: Option<FirstOperator>,
    /// Kept to provision internal accounts for tools running beside the suite (`--demo`).
    identity: Option<ecrm_identity::Identity>,
    shutdown: CancellationToken,
}

impl Suite {
    /// Takes every port, then provisions, migrates, builds and serves each member in
    /// [`Member::ALL`] order. On failure or cancellation the members already serving are
    /// stopped before this returns.
    pub async fn start(options: SuiteOptions) -> Result<Self, SuiteError> {
        database::check_role_prefix(&options.role_prefix)?;
        // Every port is taken first: each member learns where the others listen before it
        // starts, and a taken port fails the start before anything is provisioned.
        let mut listeners = Vec::with_capacity(Member::ALL.len());
        let mut addrs = [SocketAddr::from((Ipv4Addr::LOCALHOST, 0)); 5];
        for (member, addr) in Member::ALL.into_iter().zip(&mut addrs) {
            let wanted = SocketAddr::new(options.host, options.ports.port(member)?);
            let (listener, bound) = bind(member.name(), wanted).await?;
            listeners.push(listener);
            *addr = bound;
        }
        let (http, unsubscribe_addr) = bind(OUTBOUND_HTTP, options.outbound.http_addr).await?;
        let public_url = options
            .outbound
            .public_url
            .clone()
            .unwrap_or_else(|| loopback_url(unsubscribe_addr));
        let mut suite = Self {
            running: Vec::with_capacity(Member::ALL.len()),
            addrs,
            unsubscribe_addr,
            public_url,
            tls: options.tls.clone(),
            replica: Replica::default(),
            first_operator: None,
            identity: None,
            shutdown: options.shutdown.child_token(),
        };
        match suite.start_members(options, listeners, http).await {
            Ok(()) if !suite.shutdown.is_cancelled() => Ok(suite),
            Ok(()) => suite.stop().await.and(Err(SuiteError::Cancelled)),
            Err(error) => {
                // The start's error is the one worth reporting; stopping logs its own.
                let _ = suite.stop().await;
                Err(error)
            }
        }
    }

    async fn start_members(
        &mut self,
        mut options: SuiteOptions,
        listeners: Vec<TcpListener>,
        http: TcpListener,
    ) -> Result<(), SuiteError> {
        let mut wiring = Wiring::new(options.tls.server.is_some(), options.replica_of.clone());
        for (member, addr) in Member::ALL.into_iter().zip(self.addrs) {
            wiring.listens_on(member, addr);
        }
        let mut http = Some(http);
        for (member, listener) in Member::ALL.into_iter().zip(listeners) {
            if self.shutdown.is_cancelled() {
                break;
            }
            let replicated = options
                .replica_of
                .as_ref()
                .and_then(|replica| replica.database(member))
                .cloned();
            let url = match replicated {
                Some(url) => url,
                None => database::prepare(&options.admin_url, member, &options.role_prefix).await?,
            };
            self.replica.databases.insert(member, url.clone());
            let db = Db::connect(&url, member.schema(), options.pool)
                .await
                .map_err(|source| SuiteError::Pool {
                    service: member.name(),
                    source,
                })?;
            let context = ServiceContext::new(db, self.shutdown.child_token())
                .with_tls(options.tls.client.clone());
            let inputs = Inputs {
                keys: &options.keys,
                bootstrap_password: options.bootstrap_password.as_ref(),
                settings: &options.settings,
                delivery: &options.outbound.delivery,
                outbound_http: &mut http,
                public_url: &self.public_url,
            };
            let (mut routes, first) = build::build(member, context, inputs, &mut wiring).await?;
            if let Some(tls) = &options.tls.server {
                routes = routes.with_tls(tls.clone());
            }
            if let Some(first) = first {
                if let Some(tell) = options.on_first_operator.take() {
                    tell(&first);
                }
                self.first_operator = Some(first);
            }
            let server = RunningServer::start(
                listener,
                routes,
                options.shutdown_config,
                self.shutdown.child_token(),
            )
            .await?;
            self.running.push(Running { member, server });
        }
        self.identity = wiring.take_identity();
        self.replica.accounts = wiring.take_accounts();
        Ok(())
    }

    /// A new internal service account holding `scopes`, named `name` (fresh credentials each
    /// call): for a tool that works beside the suite, such as the demo data seeder.
    pub async fn internal_account(
        &self,
        name: &str,
        scopes: ecrm_auth::Scopes,
    ) -> Result<(String, Secret<String>), SuiteError> {
        let identity = self
            .identity
            .as_ref()
            .ok_or(SuiteError::NoIdentity("an internal account"))?;
        Ok(identity.provision_internal_account(name, scopes).await?)
    }

    /// Where `member` listens.
    pub fn addr(&self, member: Member) -> SocketAddr {
        self.addrs[usize::from(member.port_offset())]
    }

    /// `http://` (`https://` over TLS) and where `member` listens (loopback for a wildcard
    /// host): what a client connects to.
    pub fn url(&self, member: Member) -> String {
        service_url(self.addr(member), self.tls.server.is_some())
    }

    /// A channel to `member` as the members reach each other (with their TLS), connecting on
    /// first use.
    pub fn channel(&self, member: Member) -> Result<tonic::transport::Channel, SuiteError> {
        let endpoint = tonic::transport::Endpoint::from_shared(self.url(member))
            .map_err(|source| SuiteError::Channel { member, source })?;
        Ok(self.tls.client.secure(endpoint)?.connect_lazy())
    }

    /// What replicas of this suite's members need to start beside them on its database.
    pub fn replica(&self) -> Replica {
        self.replica.clone()
    }

    /// The members' TLS: what they serve, and how they reach each other.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// Every member and where it listens, in [`Member::ALL`] order.
    pub fn endpoints(&self) -> impl Iterator<Item = (Member, SocketAddr)> + '_ {
        Member::ALL
            .into_iter()
            .map(|member| (member, self.addr(member)))
    }

    /// Where outbound's one-click unsubscribe pages listen.
    pub fn unsubscribe_addr(&self) -> SocketAddr {
        self.unsubscribe_addr
    }

    /// The base of the unsubscribe links in messages.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The operator identity created at this start, if it had none before.
    pub fn first_operator(&self) -> Option<&FirstOperator> {
        self.first_operator.as_ref()
    }

    /// Stops every member (each drains its calls) and waits until all have stopped. The
    /// error of the last member that stopped on one, each one logged.
    pub async fn stop(mut self) -> Result<(), SuiteError> {
        self.shutdown.cancel();
        let mut stopped = Ok(());
        for running in self.running.drain(..) {
            if let Err(error) = running.server.wait().await {
                tracing::error!(service = running.member.name(), error = %ecrm_platform::status::chain(&error), "service stopped on error");
                stopped = Err(error.into());
            }
        }
        stopped
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn bind(
    service: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), SuiteError> {
    let bind_error = |source| SuiteError::Bind {
        service,
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_base_port_in_suite_order() {
        let ports = |ports: Ports| {
            Member::ALL
                .into_iter()
                .map(|member| ports.port(member))
                .collect::<Result<Vec<_>, _>>()
        };
        assert_eq!(
            ports(Ports::Base(50051)).unwrap(),
            [50051, 50052, 50053, 50054, 50055]
        );
        assert_eq!(ports(Ports::Base(0)).unwrap(), [0, 0, 0, 0, 0]);
        assert_eq!(ports(Ports::Ephemeral).unwrap(), [0, 0, 0, 0, 0]);
        assert!(matches!(
            ports(Ports::Base(65533)),
            Err(SuiteError::BasePort(65533))
        ));
    }
}
