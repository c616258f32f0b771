//! An admin with the real `ecrm` binary: service accounts and their secrets, signing key
//! rotation, and a campaign from its draft to its final figures.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::Duration;

use ecrm_client::Client;
use ecrm_client::proto::common::v1::LawfulBasis;
use ecrm_client::proto::consent::v1 as consent;
use ecrm_client::proto::outbound::v1 as outbound;
use ecrm_crypto::Secret;
use ecrm_suite::OutboundOptions;
use ecrm_testkit::SmtpSink;
use support::{Operated, assert_success, failure};

async fn stdout_of(operated: &Operated, args: &[&str]) -> String {
    let output = operated.run(args).await;
    assert_success(&output, args);
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_creates_an_account_rotates_its_secret_and_the_signing_keys_then_disables_it() {
    // A next key may sign once published for longer than every verifier's refresh interval.
    let operated = Operated::start_with(|settings| {
        settings.identity(|config| {
            config.auth_refresh_interval = Duration::from_secs(1);
            config.key_publish_delay = Duration::from_secs(2);
        })
    })
    .await;
    operated.login_admin().await;

    // Created for people: the secret is printed once, and said to be.
    let table = stdout_of(
        &operated,
        &[
            "accounts",
            "create",
            "--name",
            "checkout service",
            "--kind",
            "internal",
            "--scope",
            "profiles.read",
        ],
    )
    .await;
    assert!(table.contains("shown this once"), "{table}");
    assert!(table.contains("profiles.read"), "{table}");

    let created = operated
        .json(&[
            "accounts",
            "create",
            "--name",
            "Air Example sync",
            "--kind",
            "partner",
            "--partner-id",
            "air-example",
            "--scope",
            "profiles.read",
        ])
        .await;
    let account = &created["account"];
    let id = account["id"].as_str().unwrap().to_owned();
    let client_id = account["clientId"].as_str().unwrap().to_owned();
    let first_secret = created["clientSecret"].as_str().unwrap().to_owned();
    assert!(!first_secret.is_empty());
    assert_eq!(account["kind"], "PRINCIPAL_KIND_PARTNER");
    assert_eq!(account["partnerId"], "air-example");

    // A partner without its partner: refused before any call, the flag named.
    let (code, stderr) = failure(
        &operated
            .run(&["accounts", "create", "--name", "x", "--kind", "partner"])
            .await,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--partner-id"), "{stderr}");

    let listed = operated.json(&["accounts", "list"]).await;
    let names: Vec<&str> = listed["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["displayName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"checkout service"), "{listed}");
    assert!(names.contains(&"Air Example sync"), "{listed}");
    let table = stdout_of(&operated, &["accounts", "list"]).await;
    assert!(
        table.contains("CLIENT ID") && table.contains("air-example"),
        "{table}"
    );

    let added = operated.json(&["accounts", "add-secret", &client_id]).await;
    let second_secret = added["clientSecret"].as_str().unwrap();
    assert!(!second_secret.is_empty());
    assert_ne!(second_secret, first_secret);
    // Two secrets at most: a third waits until one is removed.
    let (code, stderr) = failure(&operated.run(&["accounts", "add-secret", &id]).await);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("remove one first"), "{stderr}");
    let checkout = listed["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["displayName"] == "checkout service")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = stdout_of(&operated, &["accounts", "add-secret", &checkout]).await;
    assert!(table.contains("shown this once"), "{table}");
    let (code, stderr) = failure(
        &operated
            .run(&["accounts", "add-secret", "no-such-account"])
            .await,
    );
    assert_eq!(code, 5, "{stderr}");

    // Keys: rotation promotes the next key, so the active key before is retired after.
    let before = operated.json(&["keys", "list"]).await;
    let active = |keys: &serde_json::Value, state: &str| -> Vec<String> {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["state"] == state)
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let active_before = active(&before, "SIGNING_KEY_STATE_ACTIVE");
    let next_before = active(&before, "SIGNING_KEY_STATE_NEXT");
    assert_eq!(active_before.len(), 1, "{before}");
    let after = rotated(&operated).await;
    // The new next key is too fresh to sign: refused, with when to try again.
    let (code, stderr) = failure(&operated.run(&["keys", "rotate"]).await);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("rotate again in"), "{stderr}");
    assert_eq!(
        active(&after, "SIGNING_KEY_STATE_ACTIVE"),
        next_before,
        "{after}"
    );
    assert!(
        active(&after, "SIGNING_KEY_STATE_RETIRED").contains(&active_before[0]),
        "{after}"
    );
    let table = stdout_of(&operated, &["keys", "list"]).await;
    assert!(
        table.contains("retired") && table.contains("VERIFIES UNTIL"),
        "{table}"
    );

    // The partner's account logs in with its secret, and lacks the scope for keys.
    let mut login = vec!["login", "--client-id", &client_id, "--client-secret-stdin"];
    let urls = operated.url_args();
    login.extend(urls.iter().map(String::as_str));
    let output = operated
        .run_with_input(&login, &format!("{second_secret}\n"))
        .await;
    assert_success(&output, &login);
    let (code, stderr) = failure(&operated.run(&["keys", "rotate"]).await);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("rotate the signing keys"), "{stderr}");
    operated.login_admin().await;

    let disabled = operated.json(&["accounts", "disable", &id]).await;
    assert!(disabled["account"]["disabledAt"].is_string(), "{disabled}");
    let (code, stderr) = failure(
        &operated
            .run(&["accounts", "disable", "no-such-account"])
            .await,
    );
    assert_eq!(code, 5, "{stderr}");

    operated.stop().await;
}

/// `ecrm keys rotate -o json` once the next key has been published long enough.
async fn rotated(operated: &Operated) -> serde_json::Value {
    let args = ["keys", "rotate", "--output", "json"];
    for _ in 0..40 {
        let output = operated.run(&args).await;
        if output.status.success() {
            return serde_json::from_slice(&output.stdout).unwrap();
        }
        let (code, stderr) = failure(&output);
        assert_eq!(code, 6, "{stderr}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the signing keys could not be rotated within 10 s");
}

/// A customer with an email address at profiles; returns the subject id.
/// A service notice by email for a purpose resting on the contract: sent without consent.
async fn notice_and_purpose(client: &Client) {
    client
        .purposes()
        .unwrap()
        .define_purpose(consent::DefinePurposeRequest {
            purpose: Some(consent::Purpose {
                key: "order_updates".to_owned(),
                description: "order updates".to_owned(),
                lawful_basis: LawfulBasis::Contract.into(),
                channels: vec![consent::Channel::Email.into()],
                data_categories: vec!["email".to_owned()],
                direct_marketing: false,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    client
        .templates()
        .unwrap()
        .upsert_template(outbound::UpsertTemplateRequest {
            template: Some(outbound::Template {
                key: "service_notice".to_owned(),
                channel: outbound::Channel::Email.into(),
                locale: "en".to_owned(),
                subject: "{{ headline }}".to_owned(),
                body: "<p>{{ headline }}</p>".to_owned(),
                variables: vec!["headline".to_owned()],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_creates_a_campaign_from_a_file_starts_pauses_resumes_and_watches_it_finish() {
    let smtp = SmtpSink::start().await.unwrap();
    let mut outbound_options = OutboundOptions::default();
    outbound_options.delivery.smtp_url = Some(Secret::new(smtp.url()));
    outbound_options.delivery.email_from = Some("Shop <news@shop.example>".to_owned());
    let operated = Operated::start_with_outbound(outbound_options).await;
    operated.login_admin().await;
    let client = operated.admin_client();
    notice_and_purpose(&client).await;
    let mut subjects = String::from("# the three customers of the test\n");
    for email in ["ada@example.com", "grace@example.com", "edsger@example.com"] {
        subjects.push_str(&operated.customer(email).await);
        subjects.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subjects.txt");
    std::fs::write(&file, subjects).unwrap();
    let file = file.to_str().unwrap();

    let create = |purpose: &'static str| {
        [
            "campaigns",
            "create",
            "--name",
            "Delivery notice",
            "--template",
            "service_notice",
            "--channel",
            "email",
            "--purpose",
            purpose,
            "--variables",
            r#"{"headline": "Your order ships"}"#,
            "--per-second",
            "1",
            "--subjects-file",
            file,
        ]
    };
    // A purpose consent does not know: invalid input, the field named.
    let (code, stderr) = failure(&operated.run(&create("no_such_purpose")).await);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("campaign.purpose_key"), "{stderr}");

    let created = operated.json(&create("order_updates")).await;
    let campaign = &created["campaign"];
    let id = campaign["campaignId"].as_str().unwrap().to_owned();
    assert_eq!(campaign["state"], "CAMPAIGN_STATE_DRAFT");
    assert_eq!(campaign["recipients"], "3");
    assert_eq!(campaign["explicitList"], true);

    // Watching a draft would wait forever: says how to start it instead.
    let (code, stderr) = failure(&operated.run(&["campaigns", "stats", &id, "--watch"]).await);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("ecrm campaigns start"), "{stderr}");

    let started = operated.json(&["campaigns", "start", &id]).await;
    assert_eq!(started["campaign"]["state"], "CAMPAIGN_STATE_RUNNING");
    // At one a second, the campaign is still sending.
    let paused = operated.json(&["campaigns", "pause", &id]).await;
    assert_eq!(paused["campaign"]["state"], "CAMPAIGN_STATE_PAUSED");
    let (code, stderr) = failure(&operated.run(&["campaigns", "pause", &id]).await);
    assert_eq!(code, 6, "{stderr}");
    let resumed = operated.json(&["campaigns", "resume", &id]).await;
    assert_eq!(resumed["campaign"]["state"], "CAMPAIGN_STATE_RUNNING");

    let last = operated
        .json(&["campaigns", "stats", &id, "--watch", "--every", "1"])
        .await;
    assert_eq!(last["recipients"], "3", "{last}");
    assert_eq!(last["sent"], "3", "{last}");
    assert_eq!(last["state"], "CAMPAIGN_STATE_COMPLETED", "{last}");
    // Zero is left out of the JSON, as the protobuf JSON mapping has it.
    assert!(
        last.get("queued").is_none_or(|queued| queued == "0"),
        "nothing left to send: {last}"
    );
    let table = stdout_of(&operated, &["campaigns", "stats", &id]).await;
    assert!(
        table.contains("sent") && table.contains("completed"),
        "{table}"
    );
    assert_eq!(smtp.messages().len(), 3);

    let (code, stderr) = failure(
        &operated
            .run(&["campaigns", "start", "0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10"])
            .await,
    );
    assert_eq!(code, 5, "{stderr}");

    operated.stop().await;
}
