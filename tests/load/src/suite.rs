//! The suite as it is deployed: each service its own process (the release binaries), started
//! with the environment of `deploy/docker-compose.yml`, in a throwaway database of the test
//! server; so that each one's memory is its own and the load crosses real sockets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use ecrm_client::{Client, Credentials, Endpoints, Service};
use ecrm_crypto::MasterKey;
use ecrm_platform::DatabaseUrl;
use ecrm_suite::Member;
use ecrm_testkit::{SmtpSink, TestDatabase};
use tokio::process::{Child, Command};

use crate::rss::Rss;

/// The first operator's password in a load run's throwaway suite.
const ADMIN_PASSWORD: &str = "load-run-admin-password";
/// How long a service may take to answer its health check once started.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How the services are started.
#[derive(Debug, Clone)]
pub struct SuiteSettings {
    /// Where `ecrm-identity`, `ecrm-profiles`, ... are.
    pub bin_dir: PathBuf,
    /// Each service's connection pool.
    pub pool_size: u32,
    /// `RUST_LOG` of the services.
    pub log_filter: String,
}

/// One service, running.
struct Process {
    member: Member,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

/// The five services, each in its own process, and what they need.
pub struct ProcessSuite {
    processes: Vec<Process>,
    /// Kept for the consent account's credentials (`privacy.execute`).
    credentials: HashMap<Member, (String, String)>,
    smtp: SmtpSink,
    role_prefix: String,
    /// Dropped before the roles are.
    database: Option<TestDatabase>,
    dir: tempfile::TempDir,
}

impl ProcessSuite {
    /// Provisions identity and the internal accounts, then starts every service in
    /// [`Member::ALL`] order, each once the one before answers its health check.
    pub async fn start(settings: &SuiteSettings) -> anyhow::Result<Self> {
        let database = TestDatabase::empty().await;
        let dir = tempfile::Builder::new().prefix("ecrm-load-").tempdir()?;
        let smtp = SmtpSink::start_counting()
            .await
            .context("the SMTP sink needs python3 with aiosmtpd")?;
        let role_prefix = format!(
            "ecrm_load_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut suite = Self {
            processes: Vec::new(),
            credentials: HashMap::new(),
            smtp,
            role_prefix,
            database: Some(database),
            dir,
        };
        let addrs = free_addrs()?;
        let keys = MasterKeys::generate()?;
        suite.provision_accounts(settings, &keys).await?;
        for member in Member::ALL {
            let env = suite.environment(member, &addrs, &keys, settings)?;
            let process = suite.spawn(settings, member, addrs[&member], env)?;
            suite.processes.push(process);
            suite.wait_ready(member).await?;
        }
        Ok(suite)
    }

    /// A superuser URL to the suite's database: the services provision their roles with it,
    /// and the SQL baselines run through it.
    pub fn admin_url(&self) -> anyhow::Result<DatabaseUrl> {
        self.database
            .as_ref()
            .map(TestDatabase::admin_url)
            .ok_or_else(|| anyhow!("the suite's database is gone"))
    }

    /// `member`'s URL to connect as its own role.
    fn member_url(&self, member: Member) -> anyhow::Result<DatabaseUrl> {
        Ok(self.admin_url()?.with_credentials(
            &member.role(&self.role_prefix),
            Some(&self.role_password(member)),
        ))
    }

    /// A password per role, fixed for the run (only the test server sees it).
    fn role_password(&self, member: Member) -> String {
        format!("{}-{}", self.role_prefix, member.name())
    }

    async fn provision_accounts(
        &mut self,
        settings: &SuiteSettings,
        keys: &MasterKeys,
    ) -> anyhow::Result<()> {
        let out_dir = self.dir.path().join("secrets");
        let output = service_command(settings, Member::Identity)
            .arg("provision-accounts")
            .arg("--out-dir")
            .arg(&out_dir)
            .env("DATABASE_URL", self.member_url(Member::Identity)?.expose())
            .env("ECRM_DATABASE_ADMIN_URL", self.admin_url()?.expose())
            .env("ECRM_IDENTITY_MASTER_KEY", &keys.identity)
            .env("RUST_LOG", &settings.log_filter)
            .output()
            .await
            .with_context(|| {
                format!(
                    "cannot run {}",
                    binary(settings, Member::Identity).display()
                )
            })?;
        if !output.status.success() {
            bail!(
                "provision-accounts failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        for member in &Member::ALL[1..] {
            let file = out_dir.join(format!("{}.env", member.name()));
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let value = |name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(&format!("{name}=")))
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("{} has no {name}", file.display()))
            };
            self.credentials.insert(
                *member,
                (value("ECRM_CLIENT_ID")?, value("ECRM_CLIENT_SECRET")?),
            );
        }
        Ok(())
    }

    /// `member`'s environment, as `deploy/docker-compose.yml` sets it.
    fn environment(
        &self,
        member: Member,
        addrs: &HashMap<Member, SocketAddr>,
        keys: &MasterKeys,
        settings: &SuiteSettings,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let url = |member: Member| format!("http://{}", addrs[&member]);
        let mut env: Vec<(&str, String)> = vec![
            ("DATABASE_URL", self.member_url(member)?.expose().to_owned()),
            (
                "ECRM_DATABASE_ADMIN_URL",
                self.admin_url()?.expose().to_owned(),
            ),
            ("ECRM_LISTEN", addrs[&member].to_string()),
            ("ECRM_DB_POOL_SIZE", settings.pool_size.to_string()),
            ("ECRM_SHUTDOWN_GRACE", "0s".to_owned()),
            ("RUST_LOG", settings.log_filter.clone()),
        ];
        if member != Member::Identity {
            let (client_id, secret) = self
                .credentials
                .get(&member)
                .ok_or_else(|| anyhow!("no internal account for {member}"))?;
            env.push(("ECRM_IDENTITY_URL", url(Member::Identity)));
            env.push(("ECRM_CLIENT_ID", client_id.clone()));
            env.push(("ECRM_CLIENT_SECRET", secret.clone()));
        }
        match member {
            Member::Identity => {
                env.push(("ECRM_IDENTITY_MASTER_KEY", keys.identity.clone()));
                env.push(("ECRM_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()));
            }
            Member::Profiles => {
                env.push(("ECRM_PROFILES_MASTER_KEY", keys.profiles.clone()));
                env.push(("ECRM_CONSENT_URL", url(Member::Consent)));
            }
            Member::Consent => {
                env.push(("ECRM_CONSENT_MASTER_KEY", keys.consent.clone()));
                env.push(("ECRM_PROFILES_URL", url(Member::Profiles)));
                env.push(("ECRM_OUTBOUND_URL", url(Member::Outbound)));
                env.push((
                    "ECRM_PERSONAL_DATA",
                    [
                        Member::Profiles,
                        Member::Consent,
                        Member::Segmentation,
                        Member::Outbound,
                    ]
                    .map(|m| format!("{}={}", m.name(), url(m)))
                    .join(","),
                ));
                // Request tasks are picked up at once, so an erasure's time is its own work.
                env.push(("ECRM_TASK_INTERVAL", "100ms".to_owned()));
            }
            Member::Segmentation => {
                env.push(("ECRM_PROFILES_URL", url(Member::Profiles)));
                env.push(("ECRM_CONSENT_URL", url(Member::Consent)));
            }
            Member::Outbound => {
                env.push(("ECRM_OUTBOUND_MASTER_KEY", keys.outbound.clone()));
                env.push(("ECRM_CONSENT_URL", url(Member::Consent)));
                env.push(("ECRM_PROFILES_URL", url(Member::Profiles)));
                env.push(("ECRM_SEGMENTATION_URL", url(Member::Segmentation)));
                env.push(("ECRM_OUTBOUND_HTTP_ADDR", "127.0.0.1:0".to_owned()));
                env.push(("ECRM_OUTBOUND_SMTP_URL", self.smtp.url()));
                env.push((
                    "ECRM_OUTBOUND_EMAIL_FROM",
                    "Shop <news@shop.example>".to_owned(),
                ));
                env.push(("ECRM_OUTBOUND_QUIET_HOURS", "none".to_owned()));
                // As the campaign benchmark measured best on two cores.
                env.push(("ECRM_OUTBOUND_WORKERS", "4".to_owned()));
                env.push(("ECRM_OUTBOUND_SEND_CONCURRENCY", "64".to_owned()));
                env.push(("ECRM_OUTBOUND_SMTP_POOL_SIZE", "32".to_owned()));
            }
        }
        Ok(env
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect())
    }

    fn spawn(
        &self,
        settings: &SuiteSettings,
        member: Member,
        addr: SocketAddr,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Process> {
        let log = self.dir.path().join(format!("{}.log", member.name()));
        let file = std::fs::File::create(&log)?;
        let child = service_command(settings, member)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (build the services first: cargo build --release --bins)",
                    binary(settings, member).display()
                )
            })?;
        Ok(Process {
            member,
            child,
            addr,
            log,
        })
    }

    /// Waits until `member` answers SERVING, or fails with the end of its log.
    async fn wait_ready(&mut self, member: Member) -> anyhow::Result<()> {
        let process = self
            .processes
            .iter_mut()
            .find(|p| p.member == member)
            .ok_or_else(|| anyhow!("{member} is not started"))?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", process.addr))?
            .connect_lazy();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let started = Instant::now();
        loop {
            if let Some(status) = process.child.try_wait()? {
                bail!("{member} exited ({status}): {}", log_tail(&process.log));
            }
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await;
            if answer.is_ok_and(|a| {
                a.into_inner().status()
                    == tonic_health::pb::health_check_response::ServingStatus::Serving
            }) {
                return Ok(());
            }
            if started.elapsed() > READY_WITHIN {
                bail!(
                    "{member} is not ready after {READY_WITHIN:?}: {}",
                    log_tail(&process.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn endpoints(&self) -> Endpoints {
        let mut endpoints = Endpoints::identity(self.url(Member::Identity));
        for (member, service) in [
            (Member::Profiles, Service::Profiles),
            (Member::Consent, Service::Consent),
            (Member::Segmentation, Service::Segmentation),
            (Member::Outbound, Service::Outbound),
        ] {
            endpoints = endpoints.with(service, self.url(member));
        }
        endpoints
    }

    pub fn url(&self, member: Member) -> String {
        self.processes
            .iter()
            .find(|p| p.member == member)
            .map(|p| format!("http://{}", p.addr))
            .unwrap_or_default()
    }

    /// The first operator, `admin`, logged in with its password.
    pub fn admin(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(
            self.endpoints(),
            Credentials::operator("admin", ADMIN_PASSWORD),
        )?)
    }

    /// The suite's own DSR orchestrator account (consent's): the only one granted
    /// `privacy.execute`, which `PersonalData` calls need.
    pub fn orchestrator(&self) -> anyhow::Result<Client> {
        let (client_id, secret) = self
            .credentials
            .get(&Member::Consent)
            .ok_or_else(|| anyhow!("no consent account"))?;
        Ok(Client::connect(
            self.endpoints(),
            Credentials::service_account(client_id.clone(), secret.clone()),
        )?)
    }

    pub fn smtp(&self) -> &SmtpSink {
        &self.smtp
    }

    /// Each service's memory reader.
    pub fn rss(&self) -> anyhow::Result<Vec<(Member, Rss)>> {
        self.processes
            .iter()
            .map(|p| {
                let pid = p
                    .child
                    .id()
                    .ok_or_else(|| anyhow!("{} has exited", p.member))?;
                Ok((p.member, Rss::of(pid)))
            })
            .collect()
    }

    /// Fails with its log when a service has died during the run.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for process in &mut self.processes {
            if let Some(status) = process.child.try_wait()? {
                bail!(
                    "{} exited ({status}): {}",
                    process.member,
                    log_tail(&process.log)
                );
            }
        }
        Ok(())
    }

    /// Stops the services, drops the database and the run's roles.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for process in self.processes.iter_mut().rev() {
            let _ = process.child.start_kill();
            let _ = process.child.wait().await;
        }
        // Roles are dropped from the server's own database: the suite's is gone by then.
        let admin = ecrm_testkit::PgServer::get()?.admin_url().clone();
        drop(self.database.take());
        let prefix = self.role_prefix.clone();
        tokio::task::spawn_blocking(move || ecrm_suite::drop_roles(&admin, &prefix)).await??;
        Ok(())
    }
}

/// `member`'s binary with none of this process's environment but `PATH` and the allocator's
/// `MIMALLOC_*` settings: the services read their settings from the environment, and must
/// not pick up the caller's.
fn service_command(settings: &SuiteSettings, member: Member) -> Command {
    let mut command = Command::new(binary(settings, member));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(std::env::vars().filter(|(name, _)| name.starts_with("MIMALLOC_")));
    command
}

fn binary(settings: &SuiteSettings, member: Member) -> PathBuf {
    settings.bin_dir.join(format!("ecrm-{}", member.name()))
}

/// The last lines of a service's log, for an error.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A free port of 127.0.0.1 for each member (free when asked: a race with other programs
/// is possible and shows as a service that cannot bind).
fn free_addrs() -> anyhow::Result<HashMap<Member, SocketAddr>> {
    let listeners: Vec<(Member, TcpListener)> = Member::ALL
        .iter()
        .map(|m| Ok((*m, TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?)))
        .collect::<std::io::Result<_>>()?;
    listeners
        .iter()
        .map(|(m, l)| Ok((*m, l.local_addr()?)))
        .collect()
}

/// Each service's master key, base64, as its environment takes it.
struct MasterKeys {
    identity: String,
    profiles: String,
    consent: String,
    outbound: String,
}

impl MasterKeys {
    fn generate() -> anyhow::Result<Self> {
        let key = || {
            MasterKey::generate()
                .map(|(_, encoded)| encoded)
                .map_err(|error| anyhow!("cannot generate a master key: {error}"))
        };
        Ok(Self {
            identity: key()?,
            profiles: key()?,
            consent: key()?,
            outbound: key()?,
        })
    }
}
