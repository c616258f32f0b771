//! A customer service day with the real `ecrm` binary: create and find profiles, record and
//! check consent, then segment the customers and score them.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::time::{Duration, Instant};

use ecrm_client::proto::common::v1::LawfulBasis;
use ecrm_client::proto::consent::v1::{
    Channel, DefinePurposeRequest, PublishNoticeRequest, Purpose,
};
use ecrm_client::{Client, Credentials, Endpoints, Service};
use ecrm_suite::Member;
use support::{ADMIN_PASSWORD, Operated, assert_success, failure};

/// The purpose `newsletter` with a published notice, as a privacy team would set it up.
async fn newsletter(operated: &Operated) {
    let suite = operated.suite();
    let endpoints = Endpoints::identity(suite.url(Member::Identity))
        .with(Service::Consent, suite.url(Member::Consent));
    let client =
        Client::connect(endpoints, Credentials::operator("admin", ADMIN_PASSWORD)).unwrap();
    let mut purposes = client.purposes().unwrap();
    purposes
        .define_purpose(DefinePurposeRequest {
            purpose: Some(Purpose {
                key: "newsletter".to_owned(),
                description: "The weekly newsletter".to_owned(),
                lawful_basis: LawfulBasis::Consent.into(),
                channels: vec![Channel::Email.into()],
                data_categories: vec!["email".to_owned()],
                direct_marketing: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    purposes
        .publish_notice(PublishNoticeRequest {
            purpose_key: "newsletter".to_owned(),
            text: "We send you our offers each week.".to_owned(),
        })
        .await
        .unwrap();
}

/// Runs `args` until `done` holds of its JSON output, for what services settle in the
/// background.
async fn eventually(
    operated: &Operated,
    args: &[&str],
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = operated.json(args).await;
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "ecrm {args:?} never settled: {value}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn text(output: &std::process::Output, args: &[&str]) -> String {
    assert_success(output, args);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_creates_and_finds_profiles_then_records_and_verifies_consent() {
    let operated = Operated::start().await;
    operated.login_admin().await;

    let ada = operated
        .json(&[
            "profiles",
            "upsert",
            "--email",
            "ada@example.com",
            "--first-name",
            "Ada",
            "--last-name",
            "Lovelace",
            "--attribute",
            "country=FR",
            "--source",
            "call_centre",
        ])
        .await;
    assert_eq!(ada["created"], true, "{ada}");
    let ada_id = ada["profile"]["subjectId"].as_str().unwrap().to_owned();
    let again = operated
        .json(&[
            "profiles",
            "upsert",
            "--email",
            "ADA@example.com",
            "--attribute",
            "locale=fr-FR",
        ])
        .await;
    assert_eq!(again["profile"]["subjectId"], ada_id.as_str());
    assert_ne!(again["created"], true);
    let grace = operated
        .json(&[
            "profiles",
            "upsert",
            "--phone",
            "+33612345678",
            "--first-name",
            "Grace",
        ])
        .await;
    let grace_id = grace["profile"]["subjectId"].as_str().unwrap().to_owned();

    // An attribute nobody declared: refused before anything is written, naming it.
    let (code, stderr) = failure(
        &operated
            .run(&[
                "profiles",
                "upsert",
                "--email",
                "x@example.com",
                "--attribute",
                "shoe_size=38",
            ])
            .await,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("shoe_size"), "{stderr}");

    let got = operated
        .json(&["profiles", "get", "--email", "ada@example.com"])
        .await;
    let attributes = &got["profile"]["attributes"];
    assert_eq!(attributes["givenName"], "Ada", "{got}");
    assert_eq!(attributes["country"], "FR", "{got}");
    assert_eq!(attributes["locale"], "fr-FR", "{got}");
    let table = text(
        &operated
            .run(&[
                "profiles",
                "get",
                "--subject",
                &ada_id,
                "--purpose",
                "legal_claims",
            ])
            .await,
        &["profiles", "get"],
    );
    assert!(table.contains("Ada Lovelace"), "{table}");
    assert!(table.contains("email: ada@example.com"), "{table}");

    let found = operated
        .json(&["profiles", "find", "--phone", "+33612345678"])
        .await;
    assert_eq!(found["profiles"][0]["subjectId"], grace_id.as_str());
    let all = operated.json(&["profiles", "find"]).await;
    let ids: Vec<&str> = all["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["subjectId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ada_id.as_str(), grace_id.as_str()]);
    let one = operated.json(&["profiles", "find", "--limit", "1"]).await;
    assert_eq!(one["profiles"].as_array().unwrap().len(), 1);

    let (code, stderr) = failure(
        &operated
            .run(&[
                "profiles",
                "get",
                "--subject",
                &uuid::Uuid::now_v7().to_string(),
            ])
            .await,
    );
    assert_eq!(code, 5, "{stderr}");
    let (code, stderr) = failure(
        &operated
            .run(&["profiles", "find", "--email", "nobody@example.com"])
            .await,
    );
    assert_eq!(code, 5, "{stderr}");

    // Consent, by the customer's email address.
    newsletter(&operated).await;
    let granted = operated
        .json(&[
            "consent",
            "grant",
            "--email",
            "ada@example.com",
            "--purpose",
            "newsletter",
            "--channel",
            "email",
            "--notice-version",
            "latest",
            "--source",
            "checkout",
        ])
        .await;
    assert_eq!(
        granted["entry"]["decision"], "DECISION_GRANTED",
        "{granted}"
    );
    assert_eq!(granted["entry"]["subjectId"], ada_id.as_str());
    assert_eq!(granted["entry"]["collectionPoint"], "checkout");
    assert_eq!(
        granted["entry"]["noticeVersion"].as_str().unwrap().len(),
        64,
        "{granted}"
    );
    let state = operated
        .json(&["consent", "state", "--subject", &ada_id])
        .await;
    assert_eq!(
        state["states"][0]["decision"], "DECISION_GRANTED",
        "{state}"
    );

    operated
        .json(&[
            "consent",
            "withdraw",
            "--subject",
            &ada_id,
            "--purpose",
            "newsletter",
            "--channel",
            "email",
            "--source",
            "preference_centre",
        ])
        .await;
    let state = operated
        .json(&["consent", "state", "--email", "ada@example.com"])
        .await;
    let states = state["states"].as_array().unwrap();
    assert_eq!(states.len(), 1, "{state}");
    assert_eq!(states[0]["purposeKey"], "newsletter");
    assert_eq!(states[0]["channel"], "CHANNEL_EMAIL");
    assert_eq!(states[0]["decision"], "DECISION_WITHDRAWN");
    let table = text(
        &operated
            .run(&["consent", "state", "--subject", &ada_id])
            .await,
        &["consent", "state"],
    );
    assert!(table.contains("PURPOSE"), "{table}");
    assert!(table.contains("withdrawn"), "{table}");

    let history = operated
        .json(&["consent", "history", "--email", "ada@example.com"])
        .await;
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{history}");
    assert_eq!(entries[0]["decision"], "DECISION_GRANTED");
    assert_eq!(entries[1]["decision"], "DECISION_WITHDRAWN");
    assert_eq!(entries[1]["previousHash"], entries[0]["hash"]);

    let verified = operated
        .json(&["consent", "verify", "--subject", &ada_id])
        .await;
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["entriesChecked"], 2, "{verified}");
    let table = text(
        &operated
            .run(&["consent", "verify", "--email", "ada@example.com"])
            .await,
        &["consent", "verify"],
    );
    assert!(table.starts_with("intact"), "{table}");

    // A purpose that does not exist, and a grant without the notice the subject saw.
    let (code, stderr) = failure(
        &operated
            .run(&[
                "consent",
                "grant",
                "--subject",
                &ada_id,
                "--purpose",
                "telepathy",
                "--channel",
                "email",
                "--notice-version",
                "latest",
            ])
            .await,
    );
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("read the purpose"), "{stderr}");
    let (code, stderr) = failure(
        &operated
            .run(&[
                "consent",
                "grant",
                "--subject",
                &ada_id,
                "--purpose",
                "newsletter",
                "--channel",
                "email",
            ])
            .await,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--notice-version"), "{stderr}");
    operated.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analyst_defines_a_segment_reads_its_members_and_recomputes_rfm() {
    let operated = Operated::start().await;
    operated.login_admin().await;
    let ada = operated
        .json(&[
            "profiles",
            "upsert",
            "--email",
            "ada@example.com",
            "--attribute",
            "country=FR",
        ])
        .await;
    let ada_id = ada["profile"]["subjectId"].as_str().unwrap().to_owned();
    operated
        .json(&[
            "profiles",
            "upsert",
            "--email",
            "grace@example.com",
            "--attribute",
            "country=GB",
        ])
        .await;

    let defined = operated
        .json(&[
            "segments",
            "define",
            "french",
            "--rule",
            r#"country == "FR""#,
            "--description",
            "customers in France",
        ])
        .await;
    assert_eq!(defined["created"], true, "{defined}");
    assert_eq!(defined["segment"]["fields"][0], "country", "{defined}");
    let (code, stderr) = failure(
        &operated
            .run(&["segments", "define", "broken", "--rule", "country =="])
            .await,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("segment.rule"), "{stderr}");

    eventually(&operated, &["segments", "list"], |listed| {
        listed["segments"][0]["populatedAt"].is_string()
    })
    .await;
    let table = text(
        &operated.run(&["segments", "list"]).await,
        &["segments", "list"],
    );
    assert!(table.contains(r#"country == "FR""#), "{table}");

    let members = eventually(&operated, &["segments", "members", "french"], |members| {
        members["members"].as_array().is_some_and(|m| !m.is_empty())
    })
    .await;
    let members = members["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["subjectId"], ada_id.as_str());
    let (code, stderr) = failure(&operated.run(&["segments", "members", "nosuch"]).await);
    assert_eq!(code, 5, "{stderr}");

    let explained = operated
        .json(&[
            "segments",
            "explain",
            "french",
            "--email",
            "ada@example.com",
        ])
        .await;
    assert_eq!(explained["member"], true, "{explained}");
    assert_eq!(
        explained["conditions"][0]["value"], r#""FR""#,
        "{explained}"
    );
    let explained = operated
        .json(&[
            "segments",
            "explain",
            "french",
            "--email",
            "grace@example.com",
        ])
        .await;
    assert_ne!(explained["member"], true, "{explained}");

    let summary = operated.json(&["segments", "rfm", "--recompute"]).await;
    assert!(
        !summary["jobId"].as_str().unwrap_or_default().is_empty(),
        "{summary}"
    );
    let names: Vec<&str> = summary["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["segment"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Champions"), "{names:?}");
    let table = text(
        &operated.run(&["segments", "rfm"]).await,
        &["segments", "rfm"],
    );
    assert!(table.contains("Can't Lose Them"), "{table}");
    // Without an order, nobody is scored.
    let (code, stderr) = failure(
        &operated
            .run(&["segments", "rfm", "--email", "ada@example.com"])
            .await,
    );
    assert_eq!(code, 5, "{stderr}");
    operated.stop().await;
}
