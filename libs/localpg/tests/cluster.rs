//! Behaviour of a local cluster run from the machine's real PostgreSQL binaries.

mod support;

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ecrm_localpg::wait_for_exit;
use ecrm_localpg::{Error, LocalCluster};
use support::{TestRoot, binaries, ephemeral, free_port, psql, psql_value};

#[test]
fn init_start_connect_and_stop_leaves_no_process() {
    let root = TestRoot::new();
    let mut cluster = root.open();
    assert!(matches!(
        cluster.superuser_url("postgres"),
        Err(Error::NotStarted)
    ));

    cluster.start(0).unwrap();
    assert!(cluster.is_running().unwrap());
    let url = cluster.superuser_url("postgres").unwrap();
    assert_eq!(url.port(), cluster.port());
    assert_eq!(psql_value(&url, "select 1"), "1");
    let pid = cluster.postmaster_pid().unwrap();

    cluster.stop().unwrap();
    assert!(!cluster.is_running().unwrap());
    assert_eq!(cluster.postmaster_pid(), None);
    assert!(
        wait_for_exit(pid, Duration::from_secs(10)),
        "postmaster {pid} still alive"
    );
    // Stopping a stopped cluster is not an error.
    cluster.stop().unwrap();
}

#[test]
fn ephemeral_cluster_has_the_settings_tests_rely_on() {
    let root = TestRoot::new();
    let mut cluster = root.open();
    cluster.start(0).unwrap();
    let url = cluster.superuser_url("postgres").unwrap();

    let settings = psql_value(
        &url,
        "select string_agg(name || '=' || setting, ',' order by name) from pg_settings \
         where name in ('fsync', 'listen_addresses', 'max_connections', 'server_encoding', \
         'unix_socket_directories')",
    );
    assert_eq!(
        settings,
        "fsync=off,listen_addresses=127.0.0.1,max_connections=200,server_encoding=UTF8,\
         unix_socket_directories="
    );
    cluster.stop().unwrap();
}

#[test]
fn second_open_reuses_the_existing_cluster_and_password() {
    let root = TestRoot::new();
    let mut first = root.open();
    first.start(0).unwrap();
    let mut url = first.superuser_url("postgres").unwrap();
    psql_value(&url, "create table kept (id int)");
    first.stop().unwrap();
    let version_file = first.data_dir().join("PG_VERSION");
    let initialised_at = std::fs::metadata(&version_file)
        .unwrap()
        .modified()
        .unwrap();
    let password_file = root.path().join("superuser.password");
    let password = std::fs::read_to_string(&password_file).unwrap();

    let mut second = root.open();
    second.start(0).unwrap();

    let modified = std::fs::metadata(&version_file)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(modified, initialised_at, "initdb ran again");
    assert_eq!(std::fs::read_to_string(&password_file).unwrap(), password);
    url.set_port(second.port()).unwrap();
    assert_eq!(second.superuser_url("postgres").unwrap(), url);
    assert_eq!(psql_value(&url, "select count(*) from kept"), "0");
    second.stop().unwrap();
}

#[test]
fn ensure_running_from_two_threads_starts_one_server() {
    let root = TestRoot::new();
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let path = root.path().to_owned();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                // Both also initialise concurrently: the lock must let exactly one run initdb.
                barrier.wait();
                let mut cluster =
                    LocalCluster::init_or_open(binaries(), &path, ephemeral()).unwrap();
                barrier.wait();
                cluster.ensure_running().unwrap();
                (cluster.port().unwrap(), cluster.postmaster_pid().unwrap())
            })
        })
        .collect();
    let results: Vec<(u16, u32)> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();

    assert_eq!(results[0], results[1]);
    let cluster = root.open();
    assert_eq!(cluster.postmaster_pid(), Some(results[0].1));
    cluster.stop().unwrap();
}

#[test]
fn start_when_already_running_restarts_on_the_requested_port() {
    let root = TestRoot::new();
    let mut first = root.open();
    first.start(0).unwrap();
    let first_pid = first.postmaster_pid().unwrap();
    let wanted = free_port();

    // A new handle, as a later process would have, finds the server left running.
    let mut second = root.open();
    second.start(wanted).unwrap();

    assert_eq!(second.port(), Some(wanted));
    let url = second.superuser_url("postgres").unwrap();
    assert_eq!(psql_value(&url, "show port"), wanted.to_string());
    assert_ne!(second.postmaster_pid(), Some(first_pid));
    assert!(wait_for_exit(first_pid, Duration::from_secs(10)));
    second.stop().unwrap();
}

#[test]
fn wrong_password_is_refused() {
    let root = TestRoot::new();
    let mut cluster = root.open();
    cluster.start(0).unwrap();
    let url = cluster.superuser_url("postgres").unwrap();
    assert_eq!(psql_value(&url, "select 1"), "1");

    let mut wrong = url.clone();
    wrong.set_password(Some("not-the-password")).unwrap();
    let output = psql(&wrong, "select 1");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "unexpected psql error: {stderr}"
    );
    cluster.stop().unwrap();
}

#[test]
fn half_initialised_data_folder_is_replaced() {
    let root = TestRoot::new();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("leftover"), "from an interrupted initdb").unwrap();

    let mut cluster = root.open();

    assert!(!data.join("leftover").exists());
    assert!(data.join("PG_VERSION").is_file());
    cluster.start(0).unwrap();
    let url = cluster.superuser_url("postgres").unwrap();
    assert_eq!(psql_value(&url, "select 1"), "1");
    cluster.stop().unwrap();
}

#[test]
fn cluster_under_a_folder_closed_to_the_server_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        // Only root hands the server to another user who may be locked out.
        return;
    }
    // Mode 0700 and owned by root, like /root: the postgres user cannot pass through.
    let closed = tempfile::Builder::new()
        .prefix("ecrm-localpg-closed-")
        .permissions(Permissions::from_mode(0o700))
        .tempdir_in("/tmp")
        .unwrap();

    let error =
        LocalCluster::init_or_open(binaries(), &closed.path().join("pg"), ephemeral()).unwrap_err();

    assert!(
        matches!(error, Error::FolderNotReachable { .. }),
        "unexpected error: {error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&closed.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("postgres"), "{message}");
}

#[test]
fn start_on_a_taken_port_reports_the_server_log() {
    let root = TestRoot::new();
    let mut cluster = root.open();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();

    let error = cluster.start(port).unwrap_err();

    let Error::StartFailed { log_tail, .. } = &error else {
        panic!("unexpected error: {error}");
    };
    assert!(log_tail.contains("could not bind"), "{log_tail}");
    assert!(error.to_string().contains(&port.to_string()), "{error}");
    assert!(!cluster.is_running().unwrap());
}
