//! `ecrm up` over mutual TLS with certificates from a CA of the test's own, and `ecrm login`
//! and the commands after it reaching it with a client certificate.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use ecrm_testkit::TestCa;
use nix::sys::signal::Signal;

use support::up::{Up, printed_password, scratch};

/// Runs `ecrm args...` with its session in `config`, feeding `stdin`.
fn ecrm(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecrm"))
        .args(args)
        .env("ECRM_CONFIG_DIR", config)
        .env_remove("ECRM_TLS_CA")
        .env_remove("ECRM_TLS_CERT")
        .env_remove("ECRM_TLS_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn up_over_mutual_tls_serves_ecrm_with_a_client_certificate_and_refuses_it_without() {
    let scratch = scratch();
    let dir = scratch.path();
    let ca = TestCa::new("ecrm suite CA").unwrap();
    let ca_file = ca.write(dir, "ca.pem").unwrap();
    let served = ca
        .issue_loopback("ecrm up")
        .unwrap()
        .write(dir, "suite")
        .unwrap();
    let alice = ca.issue("alice", &[]).unwrap().write(dir, "alice").unwrap();
    let path = |path: &Path| path.to_str().unwrap().to_owned();
    let (ca_file, served_cert, served_key) =
        (path(&ca_file), path(&served.cert), path(&served.key));
    let up = Up::start(
        dir,
        &[
            "--base-port",
            "0",
            "--tls-cert",
            &served_cert,
            "--tls-key",
            &served_key,
            "--tls-ca",
            &ca_file,
            "--tls-client-ca",
            &ca_file,
        ],
    );
    assert!(
        up.lines
            .iter()
            .any(|line| line.contains("tls") && line.contains("mutual")),
        "{}",
        up.report()
    );
    let password = format!("{}\n", printed_password(&up).unwrap());
    let mut login = vec!["login".to_owned()];
    for (name, addr) in &up.endpoints {
        login.extend([format!("--{name}-url"), format!("https://{addr}")]);
    }
    login.extend(
        [
            "--username",
            "admin",
            "--password-stdin",
            "--tls-ca",
            &ca_file,
        ]
        .map(str::to_owned),
    );
    let login: Vec<&str> = login.iter().map(String::as_str).collect();
    let config = tempfile::tempdir().unwrap();

    // Trusting the suite's CA is not enough: the suite wants a client certificate.
    let refused = ecrm(config.path(), &login, &password);
    // Exit 7, the suite cannot be reached, saying which files to check.
    assert_eq!(refused.status.code(), Some(7), "{}", text(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("cannot log in") && said.contains("--tls-cert"),
        "{}",
        text(&refused)
    );

    // With alice's certificate, logging in works, and so do the commands after it: the
    // session keeps the files and presents the certificate again.
    let (cert, key) = (path(&alice.cert), path(&alice.key));
    let with_certificate = [login.as_slice(), &["--tls-cert", &cert, "--tls-key", &key]].concat();
    let logged_in = ecrm(config.path(), &with_certificate, &password);
    assert!(logged_in.status.success(), "{}", text(&logged_in));
    let found = ecrm(config.path(), &["profiles", "find", "-o", "json"], "");
    assert!(found.status.success(), "{}", text(&found));
    let found: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert!(found.is_object() || found.is_array(), "{found}");

    up.stop(Signal::SIGINT);
}
