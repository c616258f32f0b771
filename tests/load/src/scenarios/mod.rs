//! The scenarios: each drives the running suite and, in the same run, its raw baseline, and
//! returns the comparisons it measured.

mod campaign;
mod consent;
mod erasure;
mod profiles;
mod rpc;
mod settle;

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow};
use ecrm_client::proto::common::v1 as common;
use ecrm_client::proto::consent::v1 as consent_pb;
use ecrm_client::proto::identity::v1 as identity;
use ecrm_client::proto::profiles::v1 as pb;
use ecrm_client::{Client, Credentials};
use ecrm_platform::DatabaseUrl;

use crate::driver::{Limit, Load, drive};
use crate::report::Comparison;
use crate::suite::ProcessSuite;

/// A scenario of `ecrm-load run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// `PersonalData/Describe` (no database) through a service's whole stack vs bare tonic,
    /// and the platform's server with vs without the auth layer.
    Rpc,
    /// `GetProfile` vs `pgbench -S` and vs pgbench running GetProfile's own statements.
    GetProfile,
    /// `CheckConsent` for 10,000 subjects vs the SQL that finds their latest decisions.
    CheckConsent,
    /// Erasure of a subject with 10,000 interactions vs one with a single record.
    Erasure,
    /// A campaign to `--recipients` customers vs the same messages straight to SMTP.
    Campaign,
    /// `RecordInteractions` streams of orders vs a multi-row INSERT of the same rows. Last:
    /// segmentation goes on projecting the orders after the run, which would weigh on the
    /// scenarios after it.
    Ingest,
}

impl Scenario {
    /// In the order they run.
    pub const ALL: [Scenario; 6] = [
        Scenario::Rpc,
        Scenario::GetProfile,
        Scenario::CheckConsent,
        Scenario::Erasure,
        Scenario::Campaign,
        Scenario::Ingest,
    ];

    pub async fn run(self, context: &Context) -> anyhow::Result<Vec<Comparison>> {
        context.settled().await?;
        match self {
            Scenario::Rpc => rpc::run(context).await,
            Scenario::GetProfile => profiles::get(context).await,
            Scenario::Ingest => profiles::ingest(context).await,
            Scenario::CheckConsent => consent::check(context).await,
            Scenario::Erasure => erasure::run(context).await,
            Scenario::Campaign => campaign::run(context, context.recipients).await,
        }
    }
}

/// Every scope the load's own account holds.
const LOAD_SCOPES: [&str; 7] = [
    "profiles.read",
    "profiles.write",
    "events.write",
    "consent.read",
    "consent.write",
    "outbound.send",
    "outbound.manage",
];

/// What every scenario works with.
pub struct Context {
    pub suite: ProcessSuite,
    pub load: Load,
    /// The `ecrm-load` service account: an internal caller, as a web shop's backend is.
    pub credentials: Credentials,
    /// The services' logs filter, for the echo servers.
    pub log_filter: String,
    /// Customers the campaign goes to.
    pub recipients: usize,
}

impl Context {
    /// Creates the load's service account through identity, as an administrator would.
    pub async fn new(
        suite: ProcessSuite,
        load: Load,
        log_filter: String,
        recipients: usize,
    ) -> anyhow::Result<Self> {
        let admin = suite.admin()?;
        let created = admin
            .service_accounts()?
            .create_service_account(identity::CreateServiceAccountRequest {
                display_name: "ecrm-load".to_owned(),
                kind: identity::PrincipalKind::Internal.into(),
                partner_id: String::new(),
                scopes: LOAD_SCOPES.map(str::to_owned).to_vec(),
                secret_expires_at: None,
            })
            .await
            .context("cannot create the load's service account")?
            .into_inner();
        let account = created
            .account
            .ok_or_else(|| anyhow!("no account created"))?;
        Ok(Self {
            suite,
            load,
            credentials: Credentials::service_account(account.client_id, created.client_secret),
            log_filter,
            recipients,
        })
    }

    /// One client of the suite per load client, each with its own connections and tokens,
    /// as separate callers would be, each holding its token for `scope` at `audience`
    /// before the clock starts. The logins are made one after another: identity admits a few
    /// concurrent logins of one account from one address, and throttles the rest.
    pub async fn clients(&self, audience: &str, scope: &str) -> anyhow::Result<Vec<Client>> {
        let mut clients = Vec::with_capacity(self.load.clients);
        for _ in 0..self.load.clients {
            let client = Client::connect(self.suite.endpoints(), self.credentials.clone())?;
            client
                .tokens()
                .token(audience, &[scope.to_owned()])
                .await
                .with_context(|| format!("no {scope} token for {audience}"))?;
            clients.push(client);
        }
        Ok(clients)
    }

    pub fn database(&self) -> anyhow::Result<DatabaseUrl> {
        self.suite.admin_url()
    }

    /// Waits until the suite is quiet: consent and segmentation have applied every change of
    /// the profiles feed, so what one side of a comparison wrote is not projected while the
    /// next side is measured.
    pub async fn settled(&self) -> anyhow::Result<()> {
        settle::feed_followed(&self.database()?).await?;
        Ok(())
    }
}

/// Creates `count` customers through `UpsertProfile`, 16 at a time; returns their subject ids
/// in the order of their numbers.
pub async fn create_customers(
    context: &Context,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let client = Client::connect(context.suite.endpoints(), context.credentials.clone())?;
    let created: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let sink = created.clone();
    let prefix = prefix.to_owned();
    drive(Load::new(16, Limit::Count(count as u64)), move |_, n| {
        let client = client.clone();
        let sink = sink.clone();
        let request = new_customer(&prefix, n);
        async move {
            let profile = client
                .profiles()?
                .upsert_profile(request)
                .await?
                .into_inner()
                .profile
                .ok_or_else(|| anyhow!("UpsertProfile answered no profile"))?;
            sink.lock()
                .map_err(|_| anyhow!("poisoned"))?
                .push((n, profile.subject_id));
            Ok(1)
        }
    })
    .await?;
    let mut created = std::mem::take(&mut *created.lock().map_err(|_| anyhow!("poisoned"))?);
    created.sort();
    Ok(created.into_iter().map(|(_, subject)| subject).collect())
}

/// Customer `n` of a run: an email address, a name and a country.
pub fn new_customer(prefix: &str, n: u64) -> pb::UpsertProfileRequest {
    pb::UpsertProfileRequest {
        identifiers: vec![pb::NewIdentifier {
            identifier: Some(common::Identifier {
                kind: common::IdentifierKind::Email.into(),
                value: format!("{prefix}{n}@example.com"),
                ..Default::default()
            }),
            ..Default::default()
        }],
        attributes: Some(pb::ProfileAttributes {
            given_name: format!("Customer {n}"),
            family_name: "Example".to_owned(),
            country: "FR".to_owned(),
            ..Default::default()
        }),
        source: "web_shop".to_owned(),
        merge_if_needed: false,
    }
}

/// A subject reference by id.
pub fn subject(id: &str) -> Option<common::SubjectRef> {
    Some(common::SubjectRef {
        subject: Some(common::subject_ref::Subject::SubjectId(id.to_owned())),
    })
}

/// Records each `(subject, decision)` for `purpose` by email, as given at checkout under the
/// notice `notice`, 16 at a time.
pub async fn record_decisions(
    client: &Client,
    purpose: &'static str,
    notice: &str,
    decisions: Vec<(String, consent_pb::Decision)>,
) -> anyhow::Result<()> {
    let count = decisions.len() as u64;
    let decisions = Arc::new(decisions);
    let (client, notice) = (client.clone(), notice.to_owned());
    drive(Load::new(16, Limit::Count(count)), move |_, n| {
        let (client, notice) = (client.clone(), notice.clone());
        let (subject_id, decision) = decisions[n as usize].clone();
        async move {
            client
                .consents()?
                .record_consent(consent_pb::RecordConsentRequest {
                    subject_id,
                    purpose_key: purpose.to_owned(),
                    decision: decision.into(),
                    channel: consent_pb::Channel::Email.into(),
                    collection_point: "checkout".to_owned(),
                    notice_version: notice,
                    ..Default::default()
                })
                .await?;
            Ok(1)
        }
    })
    .await?;
    Ok(())
}
