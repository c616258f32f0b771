//! The internal account each other service calls with, its scopes, and the credential files
//! `ecrm-identity provision-accounts` writes for deployments.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ecrm_auth::{Scope, Scopes};
use ecrm_crypto::Secret;

use crate::Identity;
use crate::error::IdentityError;

/// The internal account of a service that calls others.
#[derive(Debug, Clone, Copy)]
pub struct InternalAccount {
    /// The service, e.g. `profiles`; its credential file is `<service>.env`.
    pub service: &'static str,
    /// What its tokens may ask for.
    pub scopes: Scopes,
}

impl InternalAccount {
    /// The account's display name in a deployment: the binary that uses it.
    pub fn display_name(&self) -> String {
        format!("ecrm-{}", self.service)
    }
}

/// Every service's internal account. Each reads revocations and signing keys from identity
/// with it, besides what follows.
pub const INTERNAL_ACCOUNTS: [InternalAccount; 4] = [
    // Asks consent what customers share with partners.
    InternalAccount {
        service: "profiles",
        scopes: Scopes::empty()
            .with(Scope::ProfilesRead)
            .with(Scope::ConsentRead),
    },
    // Finds subjects at profiles, carries data subject requests out at every service holding
    // personal data, and has outbound email requesters their verification codes.
    InternalAccount {
        service: "consent",
        scopes: Scopes::empty()
            .with(Scope::ConsentRead)
            .with(Scope::ProfilesRead)
            .with(Scope::PrivacyExecute)
            .with(Scope::OutboundSend),
    },
    // Reads the profiles change feed, and consent's ledger for objections to profiling.
    InternalAccount {
        service: "segmentation",
        scopes: Scopes::empty()
            .with(Scope::SegmentsRead)
            .with(Scope::ProfilesRead)
            .with(Scope::ConsentRead),
    },
    // Asks consent whether a message may go and records one-click unsubscribes there, reads
    // addresses at profiles and segments' members at segmentation.
    InternalAccount {
        service: "outbound",
        scopes: Scopes::empty()
            .with(Scope::OutboundSend)
            .with(Scope::ConsentRead)
            .with(Scope::ConsentWrite)
            .with(Scope::ProfilesRead)
            .with(Scope::SegmentsRead),
    },
];

/// The internal account of `service`, if it has one.
pub fn internal_account(service: &str) -> Option<&'static InternalAccount> {
    INTERNAL_ACCOUNTS.iter().find(|a| a.service == service)
}

/// The variables of a credential file: what each service reads its account from.
pub const CREDENTIAL_VARS: [&str; 2] = [CLIENT_ID_VAR, CLIENT_SECRET_VAR];
const CLIENT_ID_VAR: &str = "ECRM_CLIENT_ID";
const CLIENT_SECRET_VAR: &str = "ECRM_CLIENT_SECRET";

/// What happened to one service's credential file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Its credentials still work: left as it was.
    Kept,
    /// Written with a new secret (the account created, or its earlier secrets removed).
    Written,
}

/// One service's credential file.
#[derive(Debug, Clone)]
pub struct AccountFile {
    pub service: &'static str,
    pub path: PathBuf,
    pub outcome: FileOutcome,
}

impl Identity {
    /// Makes sure `dir/<service>.env` holds working credentials (`ECRM_CLIENT_ID`,
    /// `ECRM_CLIENT_SECRET`, mode 0600) of every service's internal account. A file whose
    /// account exists, is enabled and still takes its secret is kept (its scopes brought up to
    /// date); any other is replaced by a fresh secret, which ends the account's earlier ones.
    pub async fn provision_account_files(
        &self,
        dir: &Path,
    ) -> Result<Vec<AccountFile>, IdentityError> {
        create_private_dir(dir)?;
        let mut files = Vec::with_capacity(INTERNAL_ACCOUNTS.len());
        for account in &INTERNAL_ACCOUNTS {
            let path = dir.join(format!("{}.env", account.service));
            let kept = match read_credentials(&path)? {
                Some((client_id, secret)) => {
                    self.accounts
                        .keep_internal(&account.display_name(), &client_id, &secret, account.scopes)
                        .await?
                }
                None => false,
            };
            let outcome = if kept {
                FileOutcome::Kept
            } else {
                let (client_id, secret) = self
                    .provision_internal_account(&account.display_name(), account.scopes)
                    .await?;
                write_credentials(&path, &client_id, &secret)?;
                FileOutcome::Written
            };
            tracing::info!(service = account.service, outcome = ?outcome, "internal account file");
            files.push(AccountFile {
                service: account.service,
                path,
                outcome,
            });
        }
        Ok(files)
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::AccountFile {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (mode 0700) unless it exists.
fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(file_error(dir))
}

/// The credentials in `path`, or `None` when there is no such file. A file without both
/// variables is refused rather than overwritten: it is not one this command wrote.
fn read_credentials(path: &Path) -> Result<Option<(String, Secret<String>)>, IdentityError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(file_error(path)(error)),
    };
    let value = |name: &str| {
        text.lines()
            .filter_map(|line| line.trim().split_once('='))
            .find(|(key, _)| key.trim() == name)
            .map(|(_, value)| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    match (value(CLIENT_ID_VAR), value(CLIENT_SECRET_VAR)) {
        (Some(client_id), Some(secret)) => Ok(Some((client_id, Secret::new(secret)))),
        _ => Err(IdentityError::AccountFileInvalid(path.to_owned())),
    }
}

/// Writes the credentials to `path` through a temporary file (mode 0600) renamed into place, so
/// a crash leaves the old file or the new one, never half of one.
fn write_credentials(
    path: &Path,
    client_id: &str,
    secret: &Secret<String>,
) -> Result<(), IdentityError> {
    let io = file_error(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = match tempfile::NamedTempFile::new_in(dir) {
        Ok(file) => file,
        Err(error) => return Err(io(error)),
    };
    // Client ids and secrets are base64url: no quoting needed for `sh`, docker or kubectl.
    let written = writeln!(
        file,
        "{CLIENT_ID_VAR}={client_id}\n{CLIENT_SECRET_VAR}={}",
        secret.expose()
    )
    .and_then(|()| {
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
    })
    .and_then(|()| file.as_file().sync_all());
    if let Err(error) = written {
        return Err(file_error(path)(error));
    }
    file.persist(path)
        .map(drop)
        .map_err(|error| file_error(path)(error.error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_account_can_be_granted_to_an_internal_principal() {
        for account in &INTERNAL_ACCOUNTS {
            assert!(
                account
                    .scopes
                    .is_subset_of(ecrm_auth::PrincipalKind::Internal.grantable()),
                "{}",
                account.service
            );
            assert!(!account.scopes.is_empty(), "{}", account.service);
        }
        assert!(internal_account("identity").is_none());
        assert_eq!(
            internal_account("outbound").map(InternalAccount::display_name),
            Some("ecrm-outbound".to_owned())
        );
    }

    #[test]
    fn a_written_file_reads_back_and_a_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.env");
        assert!(read_credentials(&path).unwrap().is_none());
        write_credentials(&path, "ecrm_ci_abc", &Secret::new("ecrm_sk_def".to_owned())).unwrap();
        let (id, secret) = read_credentials(&path).unwrap().unwrap();
        assert_eq!(
            (id.as_str(), secret.expose().as_str()),
            ("ecrm_ci_abc", "ecrm_sk_def")
        );
        std::fs::write(&path, "SOMETHING=else\n").unwrap();
        assert!(matches!(
            read_credentials(&path),
            Err(IdentityError::AccountFileInvalid(_))
        ));
    }
}
