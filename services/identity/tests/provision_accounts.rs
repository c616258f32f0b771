//! `ecrm-identity provision-accounts`: the credential files a deployment gives each service are
//! private, work at the running identity service, survive a second run, and are replaced only
//! when they no longer work.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use ecrm_auth::Scope;
use ecrm_identity::{INTERNAL_ACCOUNTS, SERVICE};
use ecrm_proto::ecrm::identity::v1 as pb;
use support::{Harness, authed};
use tonic::Code;

/// Runs the binary against `harness`'s database and master key, as a deployment would.
async fn provision(harness: &Harness, out_dir: &Path) -> Output {
    let url = harness.database.service_url(&SERVICE);
    let (key, out_dir) = (harness.master_text.clone(), out_dir.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ecrm-identity"))
            .arg("provision-accounts")
            .arg("--out-dir")
            .arg(out_dir)
            .env("DATABASE_URL", url.expose())
            .env("ECRM_IDENTITY_MASTER_KEY", key)
            // Set by the image for serving, and so there when the command runs in it.
            .env("ECRM_LISTEN", "0.0.0.0:50051")
            .env_remove("ECRM_DATABASE_ADMIN_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "provision-accounts failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

/// `(client id, client secret)` of a file the command wrote.
fn credentials(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    (value("ECRM_CLIENT_ID"), value("ECRM_CLIENT_SECRET"))
}

/// Whether the credentials obtain a token to read profiles, which every internal account may.
async fn logs_in(harness: &Harness, (client_id, secret): &(String, String)) -> Result<(), Code> {
    harness
        .client_token(client_id, secret, &["profiles.read"], "profiles")
        .await
        .map(drop)
        .map_err(|status| status.code())
}

#[tokio::test(flavor = "multi_thread")]
async fn written_files_are_private_work_and_a_second_run_keeps_them() {
    let harness = Harness::start().await;
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("secrets");

    let first = provision(&harness, &out).await;
    let printed = succeeded(&first);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o700);
    let mut written = Vec::new();
    for account in &INTERNAL_ACCOUNTS {
        assert!(account.scopes.contains(Scope::ProfilesRead));
        let path = out.join(format!("{}.env", account.service));
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        let found = credentials(&path);
        assert!(
            printed.contains(&format!("{}: written", account.service)),
            "{printed}"
        );
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert!(!printed.contains(&found.1) && !stderr.contains(&found.1));
        logs_in(&harness, &found).await.unwrap();
        written.push((
            path,
            std::fs::read(out.join(format!("{}.env", account.service))).unwrap(),
        ));
    }

    let second = succeeded(&provision(&harness, &out).await);
    for (account, (path, before)) in INTERNAL_ACCOUNTS.iter().zip(&written) {
        assert!(
            second.contains(&format!("{}: kept", account.service)),
            "{second}"
        );
        assert_eq!(&std::fs::read(path).unwrap(), before);
        logs_in(&harness, &credentials(path)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_file_gets_a_new_secret_and_a_disabled_account_stops_the_run() {
    let harness = Harness::start().await;
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path();
    succeeded(&provision(&harness, out).await);

    // Lost: the same account, a new secret; the old secret stops working.
    let consent = out.join("consent.env");
    let lost = credentials(&consent);
    std::fs::remove_file(&consent).unwrap();
    let printed = succeeded(&provision(&harness, out).await);
    assert!(printed.contains("consent: written"), "{printed}");
    assert!(printed.contains("profiles: kept"), "{printed}");
    let renewed = credentials(&consent);
    assert_eq!(renewed.0, lost.0);
    assert_eq!(logs_in(&harness, &lost).await, Err(Code::Unauthenticated));
    logs_in(&harness, &renewed).await.unwrap();

    // Disabled by an operator: that decision stands, and the file is left as it was.
    let outbound = out.join("outbound.env");
    let before = std::fs::read(&outbound).unwrap();
    harness
        .accounts()
        .disable_service_account(authed(
            pb::DisableServiceAccountRequest {
                id: credentials(&outbound).0,
            },
            &harness.admin_token,
        ))
        .await
        .unwrap();
    let refused = provision(&harness, out).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("disabled"), "{stderr}");
    assert_eq!(std::fs::read(&outbound).unwrap(), before);
}
