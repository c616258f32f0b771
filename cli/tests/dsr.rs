//! A compliance officer's day with the real `ecrm` binary: log in, find the requests due,
//! carry one out and download its signed export, then log out.

mod support;

use support::{ADMIN_PASSWORD, Operated, assert_success, failure};

#[tokio::test(flavor = "multi_thread")]
async fn an_officer_logs_in_lists_requests_due_and_downloads_a_checked_export() {
    let operated = Operated::start().await;

    // Before login: says so, with the exit code for it.
    let (code, stderr) = failure(&operated.run(&["dsr", "list"]).await);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("ecrm login"), "{stderr}");

    operated.login_admin().await;
    let session_file = operated.config_dir.path().join("session.json");
    let mode = std::fs::metadata(&session_file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let saved = std::fs::read_to_string(&session_file).unwrap();
    assert!(!saved.contains(ADMIN_PASSWORD), "the password is stored");

    let ada = operated.customer("ada@example.com").await;
    let grace = operated.customer("grace@example.com").await;
    // Received by post three weeks ago, and a fresh one: the older is due first.
    let old = operated
        .json(&[
            "dsr",
            "submit",
            "--subject",
            &grace,
            "--type",
            "erasure",
            "--channel",
            "post",
            "--received-at",
            &(chrono::Utc::now().date_naive() - chrono::Duration::days(21)).to_string(),
        ])
        .await;
    let access = operated
        .json(&[
            "dsr",
            "submit",
            "--email",
            "ada@example.com",
            "--type",
            "access",
        ])
        .await;
    let access_id = access["request"]["requestId"].as_str().unwrap().to_owned();
    assert_eq!(access["request"]["subjectId"], ada.as_str());
    for id in [old["request"]["requestId"].as_str().unwrap(), &access_id] {
        operated
            .json(&[
                "dsr",
                "verify",
                id,
                "--reason",
                "called back on the number on file",
            ])
            .await;
    }

    let listed = operated.json(&["dsr", "list"]).await;
    let ids: Vec<&str> = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requestId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [old["request"]["requestId"].as_str().unwrap(), &access_id]
    );
    let table = operated.run(&["dsr", "list"]).await;
    assert_success(&table, &["dsr", "list"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("DAYS LEFT"), "{table}");
    // Both deadlines run from verification (today): the older receipt comes first, with the
    // days left to its due date.
    let due = &listed["requests"][0]["dueOn"];
    let due = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(due["year"].as_i64().unwrap()).unwrap(),
        u32::try_from(due["month"].as_i64().unwrap()).unwrap(),
        u32::try_from(due["day"].as_i64().unwrap()).unwrap(),
    )
    .unwrap();
    let days_left = (due - chrono::Utc::now().date_naive()).num_days();
    let first_row = table.lines().nth(1).unwrap();
    assert!(first_row.contains("erasure"), "{table}");
    assert!(
        first_row.trim_end().ends_with(&format!(" {days_left}")),
        "{table}"
    );

    operated.json(&["dsr", "approve", &access_id]).await;
    let completed = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let shown = operated.json(&["dsr", "show", &access_id]).await;
            if shown["request"]["status"] == "REQUEST_STATUS_COMPLETED" {
                break shown;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not completed: {shown}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    assert_eq!(completed["request"]["type"], "REQUEST_TYPE_ACCESS");

    let out = operated.config_dir.path().join("ada.zip");
    let exported = operated
        .json(&["dsr", "export", &access_id, "--out", out.to_str().unwrap()])
        .await;
    assert_eq!(exported["signatureValid"], true);
    let parts: Vec<&str> = exported["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(parts.contains(&"profiles.json"), "{parts:?}");
    let zip = std::fs::read(&out).unwrap();
    assert!(zip.starts_with(b"PK"));

    // A key other than the one that signed: refused, and nothing kept.
    let elsewhere = operated.config_dir.path().join("other.zip");
    let (code, stderr) = failure(
        &operated
            .run(&[
                "dsr",
                "export",
                &access_id,
                "--out",
                elsewhere.to_str().unwrap(),
                "--public-key",
                &"ab".repeat(32),
            ])
            .await,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not check out"), "{stderr}");
    assert!(!elsewhere.exists());

    // Unknown request, and a bad id: exit codes scripts can tell apart.
    let (code, _) = failure(
        &operated
            .run(&["dsr", "show", &uuid::Uuid::now_v7().to_string()])
            .await,
    );
    assert_eq!(code, 5);
    let (code, stderr) = failure(&operated.run(&["dsr", "show", "not-an-id"]).await);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("request_id"), "{stderr}");

    let out = operated.run(&["logout"]).await;
    assert_success(&out, &["logout"]);
    assert!(!session_file.exists());
    let (code, _) = failure(&operated.run(&["dsr", "list"]).await);
    assert_eq!(code, 3);
    operated.stop().await;
}
