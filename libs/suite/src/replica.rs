//! A second suite on the database of a running one, as replicas of every service would run:
//! the same roles with their passwords, the same internal accounts with their secrets, none
//! of them made again (making them again would lock the first suite out).

use std::collections::HashMap;

use ecrm_crypto::Secret;
use ecrm_platform::DatabaseUrl;

use crate::Member;

/// What each member of a running suite connects and logs in with: give it to
/// [`crate::SuiteOptions::replica_of`] to start replicas of every member beside it.
#[derive(Clone, Default)]
pub struct Replica {
    pub(crate) databases: HashMap<Member, DatabaseUrl>,
    pub(crate) accounts: HashMap<Member, (String, Secret<String>)>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("members", &self.databases.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// The URL `member` connects to its database with, its role's password included.
    pub(crate) fn database(&self, member: Member) -> Option<&DatabaseUrl> {
        self.databases.get(&member)
    }

    /// `member`'s internal account at identity: client id and secret.
    pub(crate) fn account(&self, member: Member) -> Option<&(String, Secret<String>)> {
        self.accounts.get(&member)
    }
}
