//! Locating the PostgreSQL server binaries.

use ecrm_localpg::{Error, PgBinaries};

#[test]
fn missing_binaries_give_an_install_hint() {
    let empty = tempfile::tempdir().unwrap();

    let error = PgBinaries::in_dir(empty.path()).unwrap_err();

    assert!(matches!(error, Error::BinariesNotFound { .. }));
    let message = error.to_string();
    assert!(message.contains("apt-get install postgresql"), "{message}");
    assert!(message.contains("ECRM_PG_BINDIR"), "{message}");
    assert!(
        message.contains(&empty.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn installed_binaries_are_found_and_report_their_version() {
    let binaries = PgBinaries::find().unwrap();

    assert!(binaries.bindir().join("initdb").is_file());
    assert_eq!(PgBinaries::in_dir(binaries.bindir()).unwrap(), binaries);
    let version = binaries.version().unwrap();
    assert!(version.starts_with("postgres (PostgreSQL) "), "{version}");
}
