//! The whole suite in this process for one test: its own database on the shared PostgreSQL,
//! its own roles, a real SMTP server for outbound, and callers holding real tokens from
//! identity.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of the harness"
)]
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

pub mod accounts;
pub mod campaigns;
pub mod customers;
pub mod logs;
pub mod raw;
pub mod sql;

use std::future::Future;
use std::sync::Once;
use std::time::{Duration, Instant};

use ecrm_crypto::Secret;
use ecrm_platform::DatabaseUrl;
use ecrm_platform::db::PoolOptions;
use ecrm_platform::tls::Tls;
use ecrm_suite::{Member, MemberSettings, OutboundOptions, Suite, SuiteKeys, SuiteOptions};
use ecrm_testkit::{SmtpSink, TestDatabase};
use tonic::transport::Channel;

pub use self::accounts::{Caller, authorized, reading};

/// The first operator's password in every journey.
pub const ADMIN_PASSWORD: &str = "e2e-admin-password-long-enough";
/// Who the shop's emails come from.
pub const EMAIL_FROM: &str = "Shop <news@shop.example>";
/// Roles of journeys are named `ecrm_e2e_<random>_<schema>`.
const ROLE_PREFIX: &str = "ecrm_e2e_";
/// How long anything the suite does in the background may take to show.
pub const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// One test's suite. Stop it with [`Journey::stop`]; a test that fails first leaves it to the
/// drop, which cancels the services, drops the database and then the roles.
pub struct Journey {
    suite: Option<Suite>,
    pub smtp: SmtpSink,
    /// The services' master keys, as a deployment's secret store would hold them.
    pub keys: SuiteKeys,
    pub admin: Caller,
    /// The superuser URL of the suite's database.
    admin_url: DatabaseUrl,
    /// Declared after the suite: dropped once the services are told to stop. None when the
    /// journey runs in a database of its own server ([`Journey::start_in`]).
    database: Option<TestDatabase>,
    /// Declared last: roles can go only once the database that used them is gone.
    _roles: Option<Roles>,
}

impl Journey {
    /// The suite with each service's own settings except where a test must not wait on the
    /// clock: no quiet hours, and quick background rounds.
    pub async fn start() -> Self {
        Self::start_with(|settings| settings).await
    }

    /// Like [`Journey::start`], with more changes to the members' settings.
    pub async fn start_with(adjust: impl FnOnce(MemberSettings) -> MemberSettings) -> Self {
        Self::start_with_tls(Tls::default(), adjust).await
    }

    /// Like [`Journey::start_with`], every service serving and calling the others with `tls`;
    /// [`Journey::channel`] and the admin call with its client side.
    pub async fn start_with_tls(
        tls: Tls,
        adjust: impl FnOnce(MemberSettings) -> MemberSettings,
    ) -> Self {
        sweep_left_roles().await;
        let database = TestDatabase::empty().await;
        let roles = Roles {
            prefix: role_prefix(),
            // The maintenance database: the journey's own is gone when its roles are dropped.
            admin_url: database.admin_url().with_database("postgres"),
        };
        let admin_url = database.admin_url();
        Self::start_on(
            admin_url,
            roles.prefix.clone(),
            (Some(database), Some(roles)),
            tls,
            adjust,
        )
        .await
    }

    /// The suite in the database of `admin_url` (a superuser's), on a server of the test's own
    /// that goes with it: its roles are left to that server.
    pub async fn start_in(admin_url: DatabaseUrl) -> Self {
        Self::start_on(
            admin_url,
            role_prefix(),
            (None, None),
            Tls::default(),
            |settings| settings,
        )
        .await
    }

    async fn start_on(
        admin_url: DatabaseUrl,
        role_prefix: String,
        (database, roles): (Option<TestDatabase>, Option<Roles>),
        tls: Tls,
        adjust: impl FnOnce(MemberSettings) -> MemberSettings,
    ) -> Self {
        logs::capture();
        logs::forbid(ADMIN_PASSWORD);
        let smtp = SmtpSink::start().await.unwrap();
        let keys = SuiteKeys::generate().unwrap();
        let options = SuiteOptions {
            role_prefix,
            bootstrap_password: Some(Secret::new(ADMIN_PASSWORD.to_owned())),
            settings: adjust(journey_settings()),
            tls,
            ..suite_options(admin_url.clone(), &keys, &smtp)
        };
        let suite = Suite::start(options)
            .await
            .unwrap_or_else(|error| panic!("{}", ecrm_platform::status::chain(&error)));
        let first = suite.first_operator().unwrap();
        assert_eq!(first.username, "admin");
        assert!(!first.generated);
        let identity = suite.channel(Member::Identity).unwrap();
        let admin = Caller::operator(identity, "admin", ADMIN_PASSWORD);
        Self {
            suite: Some(suite),
            smtp,
            keys,
            admin,
            admin_url,
            database,
            _roles: roles,
        }
    }

    pub fn suite(&self) -> &Suite {
        self.suite.as_ref().unwrap()
    }

    /// The superuser URL of the suite's database, to read what was stored.
    pub fn admin_url(&self) -> &DatabaseUrl {
        &self.admin_url
    }

    /// Replicas of every service on this journey's database, beside its own: the same roles,
    /// accounts, keys and SMTP server, each on ports of its own. Stop it before the journey.
    pub async fn start_replicas(&self) -> Suite {
        let options = SuiteOptions {
            settings: journey_settings(),
            replica_of: Some(self.suite().replica()),
            // Used only to provision, which replicas do not.
            ..suite_options(self.admin_url.clone(), &self.keys, &self.smtp)
        };
        Suite::start(options)
            .await
            .unwrap_or_else(|error| panic!("{}", ecrm_platform::status::chain(&error)))
    }

    /// A channel to `member`.
    pub fn channel(&self, member: Member) -> Channel {
        self.suite().channel(member).unwrap()
    }

    /// Stops every service and waits until they have stopped; then no line they logged may
    /// hold personal data or a secret.
    pub async fn stop(mut self) {
        if let Some(suite) = self.suite.take() {
            suite
                .stop()
                .await
                .unwrap_or_else(|error| panic!("{}", ecrm_platform::status::chain(&error)));
        }
        logs::assert_none_leaked();
    }
}

/// Each service's settings in journeys: nothing waits on the clock (no quiet hours, quick
/// background rounds).
fn journey_settings() -> MemberSettings {
    MemberSettings::default()
        .profiles(|config| config.feed_poll_interval = Duration::from_millis(50))
        .consent(|config| config.task_interval = Duration::from_millis(100))
        .outbound(|config| {
            // A run at night must not wait for the morning.
            config.quiet_hours = "none".to_owned();
            config.idle = Duration::from_millis(50);
            config.retry_base_secs = 1;
            config.gate_retry_secs = 1;
        })
}

/// The suite on `admin_url`'s database with `keys`, mailing through `smtp`.
fn suite_options(admin_url: DatabaseUrl, keys: &SuiteKeys, smtp: &SmtpSink) -> SuiteOptions {
    let delivery = ecrm_outbound::DeliveryConfig {
        smtp_url: Some(Secret::new(smtp.url())),
        email_from: Some(EMAIL_FROM.to_owned()),
        ..ecrm_outbound::DeliveryConfig::default()
    };
    SuiteOptions {
        outbound: OutboundOptions {
            delivery,
            ..OutboundOptions::default()
        },
        // Several suites share the server: each keeps to a few connections per service.
        pool: PoolOptions {
            max_size: 5,
            ..PoolOptions::default()
        },
        ..SuiteOptions::new(admin_url, keys.clone())
    }
}

/// A prefix of roles no other journey has.
fn role_prefix() -> String {
    format!(
        "{ROLE_PREFIX}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// This journey's roles, dropped with it.
struct Roles {
    prefix: String,
    admin_url: DatabaseUrl,
}

impl Drop for Roles {
    fn drop(&mut self) {
        if let Err(error) = ecrm_suite::drop_roles(&self.admin_url, &self.prefix) {
            tracing::warn!(error = %ecrm_platform::status::chain(&error), "cannot drop a journey's roles");
        }
    }
}

/// Drops the roles journeys of killed test runs left: PostgreSQL refuses to drop a role that
/// still owns anything, so the roles of journeys running now stay.
async fn sweep_left_roles() {
    static SWEPT: Once = Once::new();
    if SWEPT.is_completed() {
        return;
    }
    tokio::task::spawn_blocking(|| {
        SWEPT.call_once(|| {
            use diesel::connection::SimpleConnection as _;
            use diesel::{Connection as _, RunQueryDsl as _};
            #[derive(diesel::QueryableByName)]
            struct Role {
                #[diesel(sql_type = diesel::sql_types::Text)]
                name: String,
            }
            let server = ecrm_testkit::PgServer::get().unwrap();
            let mut conn = diesel::PgConnection::establish(server.admin_url().expose()).unwrap();
            let roles: Vec<Role> = diesel::sql_query(
                "SELECT rolname::text AS name FROM pg_roles WHERE starts_with(rolname, $1)",
            )
            .bind::<diesel::sql_types::Text, _>(ROLE_PREFIX)
            .load(&mut conn)
            .unwrap();
            for role in roles {
                let sql = format!(
                    "DROP ROLE IF EXISTS {}",
                    ecrm_platform::db::quote_identifier(&role.name)
                );
                // In use by a journey running now: kept.
                let _ = conn.batch_execute(&sql);
            }
        });
    })
    .await
    .unwrap();
}

/// Polls `probe` until it gives a value or [`DEADLINE`] passes; panics with `what` then.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(POLL).await;
    }
}
