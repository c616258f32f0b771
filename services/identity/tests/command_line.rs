//! The `ecrm-identity` binary's command line: secrets given in the environment never appear in
//! its help or its errors.

use std::process::Command;

#[test]
fn help_and_errors_never_show_secret_values_from_the_environment() {
    let master_key = "c2VjcmV0LW1hc3Rlci1rZXktdGhhdC1tdXN0LWhpZGU=";
    let admin_password = "bootstrap-password-that-must-hide";
    let database_password = "db-password-that-must-hide";
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ecrm-identity"))
            .args(args)
            .env("ECRM_IDENTITY_MASTER_KEY", master_key)
            .env("ECRM_BOOTSTRAP_ADMIN_PASSWORD", admin_password)
            .env(
                "DATABASE_URL",
                format!("postgres://svc:{database_password}@db:5432"),
            )
            .output()
            .expect("the binary runs")
    };

    let help = run(&["--help"]);
    let provision_help = run(&["provision-accounts", "--help"]);
    let bad_url = run(&[]);
    for output in [&help, &provision_help, &bad_url] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for secret in [master_key, admin_password, database_password] {
            assert!(!text.contains(secret), "a secret was printed:\n{text}");
        }
    }
    assert!(String::from_utf8_lossy(&help.stdout).contains("ECRM_IDENTITY_MASTER_KEY"));
    assert!(String::from_utf8_lossy(&help.stdout).contains("provision-accounts"));
    assert!(String::from_utf8_lossy(&provision_help.stdout).contains("--out-dir"));
    // The URL names no database: refused before anything starts, without echoing it.
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("--database-url"));
}
