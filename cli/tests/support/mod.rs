//! The whole suite in this process on its own database and roles, and the real `ecrm` binary
//! run against it as a user would, with a config directory of its own.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, helpers included"
)]

pub mod up;

use std::process::Output;
use std::time::Duration;

use ecrm_client::proto::common::v1::{Identifier, IdentifierKind};
use ecrm_client::proto::profiles::v1::{NewIdentifier, UpsertProfileRequest};
use ecrm_client::{Client, Credentials, Endpoints, Service};
use ecrm_crypto::Secret;
use ecrm_platform::DatabaseUrl;
use ecrm_platform::db::PoolOptions;
use ecrm_suite::{Member, MemberSettings, OutboundOptions, Suite, SuiteKeys, SuiteOptions};
use ecrm_testkit::TestDatabase;
use tempfile::TempDir;

pub const ADMIN_PASSWORD: &str = "cli-admin-password-long-enough";

/// A running suite and a user of the `ecrm` command.
pub struct Operated {
    suite: Option<Suite>,
    /// `ECRM_CONFIG_DIR` of every command run: where the session is kept.
    pub config_dir: TempDir,
    /// Declared after the suite: dropped once the services are told to stop.
    database: TestDatabase,
    /// Declared last: roles go once the database that used them is gone.
    _roles: Roles,
}

impl Operated {
    pub async fn start() -> Self {
        Self::start_with(|settings| settings).await
    }

    pub async fn start_with(adjust: impl FnOnce(MemberSettings) -> MemberSettings) -> Self {
        Self::start_configured(adjust, OutboundOptions::default()).await
    }

    /// With outbound's channels (`outbound.delivery`), which the default suite has none of.
    pub async fn start_with_outbound(outbound: OutboundOptions) -> Self {
        Self::start_configured(|settings| settings, outbound).await
    }

    async fn start_configured(
        adjust: impl FnOnce(MemberSettings) -> MemberSettings,
        outbound: OutboundOptions,
    ) -> Self {
        let database = TestDatabase::empty().await;
        let roles = Roles {
            prefix: format!(
                "ecrm_cli_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            admin_url: database.admin_url().with_database("postgres"),
        };
        let settings = MemberSettings::default()
            .profiles(|config| config.feed_poll_interval = Duration::from_millis(50))
            .consent(|config| config.task_interval = Duration::from_millis(100));
        let options = SuiteOptions {
            role_prefix: roles.prefix.clone(),
            bootstrap_password: Some(Secret::new(ADMIN_PASSWORD.to_owned())),
            settings: adjust(settings),
            outbound,
            pool: PoolOptions {
                max_size: 5,
                ..PoolOptions::default()
            },
            ..SuiteOptions::new(database.admin_url(), SuiteKeys::generate().unwrap())
        };
        let suite = Suite::start(options)
            .await
            .unwrap_or_else(|error| panic!("{}", ecrm_platform::status::chain(&error)));
        Self {
            suite: Some(suite),
            config_dir: tempfile::tempdir().unwrap(),
            database,
            _roles: roles,
        }
    }

    pub fn suite(&self) -> &Suite {
        self.suite.as_ref().unwrap()
    }

    /// `--identity-url ... --outbound-url ...`: where `ecrm login` finds each service.
    pub fn url_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, member) in [
            ("--identity-url", Member::Identity),
            ("--profiles-url", Member::Profiles),
            ("--consent-url", Member::Consent),
            ("--segmentation-url", Member::Segmentation),
            ("--outbound-url", Member::Outbound),
        ] {
            args.push(flag.to_owned());
            args.push(self.suite().url(member));
        }
        args
    }

    /// A client of every service calling as `admin`, to set data up as the suite's other users
    /// would.
    pub fn admin_client(&self) -> Client {
        let mut endpoints = Endpoints::identity(self.suite().url(Member::Identity));
        for (service, member) in [
            (Service::Profiles, Member::Profiles),
            (Service::Consent, Member::Consent),
            (Service::Segmentation, Member::Segmentation),
            (Service::Outbound, Member::Outbound),
        ] {
            endpoints = endpoints.with(service, self.suite().url(member));
        }
        Client::connect(endpoints, Credentials::operator("admin", ADMIN_PASSWORD)).unwrap()
    }

    /// A customer created at profiles by email, as a shop's checkout would; its subject id.
    pub async fn customer(&self, email: &str) -> String {
        self.admin_client()
            .profiles()
            .unwrap()
            .upsert_profile(UpsertProfileRequest {
                identifiers: vec![NewIdentifier {
                    identifier: Some(Identifier {
                        kind: IdentifierKind::Email.into(),
                        value: email.to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                source: "web_shop".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
            .subject_id
    }

    /// Runs `ecrm args...`, feeding `stdin`, and waits for it.
    pub async fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecrm"))
            .args(args)
            .env("ECRM_CONFIG_DIR", self.config_dir.path())
            .env_remove("ECRM_OUTPUT")
            .env_remove("ECRM_PASSWORD")
            .env_remove("ECRM_CLIENT_SECRET")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("ecrm did not finish within a minute")
            .unwrap()
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "").await
    }

    /// Runs `ecrm args... -o json`, which must succeed, and parses what it printed.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let output = self.run(&all).await;
        assert_success(&output, args);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "ecrm {args:?} printed no JSON ({error}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Logs in as `admin`, the password on stdin.
    pub async fn login_admin(&self) {
        let mut args = vec![
            "login".to_owned(),
            "--username".to_owned(),
            "admin".to_owned(),
        ];
        args.push("--password-stdin".to_owned());
        args.extend(self.url_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self
            .run_with_input(&args, &format!("{ADMIN_PASSWORD}\n"))
            .await;
        assert_success(&output, &args);
    }

    pub async fn stop(mut self) {
        if let Some(suite) = self.suite.take() {
            suite.stop().await.unwrap();
        }
    }
}

/// Panics with what the command printed unless it exited 0.
pub fn assert_success(output: &Output, args: &[&str]) {
    assert!(
        output.status.success(),
        "ecrm {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The exit code and stderr of a command expected to fail.
pub fn failure(output: &Output) -> (i32, String) {
    assert!(!output.status.success(), "expected a failure: {output:?}");
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A suite's roles, dropped with it.
struct Roles {
    prefix: String,
    admin_url: DatabaseUrl,
}

impl Drop for Roles {
    fn drop(&mut self) {
        let _ = ecrm_suite::drop_roles(&self.admin_url, &self.prefix);
    }
}
