//! Counting login attempts per name and source, and blocking a name from a source after
//! repeated failures.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use ecrm_crypto::BlindIndexKey;
use ecrm_platform::Db;

use super::domain::Credentials;
use super::store;
use crate::error::IdentityError;

/// Attempts allowed before logins of a name from a source are blocked.
pub const FREE_ATTEMPTS: i32 = 5;
const FIRST_BLOCK: Duration = Duration::from_secs(5);
const LONGEST_BLOCK: Duration = Duration::from_secs(15 * 60);

/// How long logins are blocked after `attempts` unsuccessful attempts: from the fifth on,
/// 5 s, doubling each time, at most 15 minutes.
pub fn block_after(attempts: i32) -> Option<Duration> {
    let beyond = attempts.checked_sub(FREE_ATTEMPTS)?;
    let beyond = u32::try_from(beyond).ok()?;
    let factor = 2_u32.checked_pow(beyond).unwrap_or(u32::MAX);
    Some(FIRST_BLOCK.saturating_mul(factor).min(LONGEST_BLOCK))
}

/// How a counted attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// No credential was judged (no hashing slot, a database error): not a failure.
    Undecided,
}

/// The counters one attempt is counted in: blind indexes of the login name, and of the name
/// with the source.
#[derive(Debug, Clone)]
pub struct AttemptKeys {
    name_key: String,
    attempt_key: String,
}

pub struct LoginAttempts {
    db: Db,
    /// Keys the attempt counters, so neither names nor addresses are stored.
    key: BlindIndexKey,
}

impl std::fmt::Debug for LoginAttempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAttempts").finish_non_exhaustive()
    }
}

impl LoginAttempts {
    pub fn new(db: Db, key: BlindIndexKey) -> Self {
        Self { db, key }
    }

    /// The counters of a login with `credentials` from `source`.
    pub fn keys(&self, credentials: &Credentials, source: Option<IpAddr>) -> AttemptKeys {
        let name = match credentials {
            Credentials::ClientCredentials { client_id, .. } => format!("client:{client_id}"),
            Credentials::OperatorPassword { username, .. } => format!("operator:{username}"),
        };
        let source = source.map_or_else(|| "unknown".to_owned(), |ip| source_group(ip).to_string());
        AttemptKeys {
            name_key: self.key.index(name.as_bytes()),
            attempt_key: self.key.index(format!("{name}@{source}").as_bytes()),
        }
    }

    /// Admits the attempt, or refuses it: while blocked, or when too many are being checked
    /// already. The counters' row is locked meanwhile, so concurrent attempts are admitted one
    /// after another.
    pub async fn start(&self, keys: &AttemptKeys) -> Result<(), IdentityError> {
        let AttemptKeys {
            name_key,
            attempt_key,
        } = keys.clone();
        self.db
            .run(move |conn| {
                let now = Utc::now();
                let counters = store::find_for_update(conn, &attempt_key, &name_key, now)?;
                if let Some(until) = counters.blocked_until
                    && until > now
                {
                    let retry_after = (until - now).to_std().unwrap_or(FIRST_BLOCK);
                    return Err(IdentityError::Throttled { retry_after });
                }
                // Attempts left pending by a process that died are forgotten after a while.
                let pending = if now - counters.last_attempt_at > chrono::Duration::minutes(1) {
                    0
                } else {
                    counters.pending
                };
                // Failures so far and attempts in flight share the free attempts; once they are
                // used up, one attempt at a time, each failure blocking longer.
                let in_flight_allowed = (FREE_ATTEMPTS - counters.failures).max(1);
                if pending >= in_flight_allowed {
                    return Err(IdentityError::Busy);
                }
                store::update_start(conn, &attempt_key, pending + 1, now)?;
                Ok(())
            })
            .await
    }

    pub async fn finish(&self, keys: &AttemptKeys, outcome: Outcome) -> Result<(), IdentityError> {
        let attempt_key = keys.attempt_key.clone();
        self.db
            .run(move |conn| {
                // The counters may be gone: an operator's password reset clears them.
                let Some(failures) = store::update_finish(conn, &attempt_key, outcome)? else {
                    return Ok(());
                };
                if outcome == Outcome::Failed
                    && let Some(block) = block_after(failures)
                {
                    let until = Utc::now()
                        + chrono::Duration::from_std(block).unwrap_or(chrono::Duration::MAX);
                    store::update_blocked_until(conn, &attempt_key, until)?;
                    tracing::warn!(
                        failures,
                        block_secs = block.as_secs(),
                        "logins of one name from one source blocked"
                    );
                }
                Ok(())
            })
            .await
    }
}

/// The unit attempts are counted per: the address itself for IPv4, the /64 network for IPv6,
/// where one host may hold a whole /64.
fn source_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_from_one_ipv6_network_count_together() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_group(a), source_group(b));
        assert_ne!(source_group(a), source_group(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_group(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(source_group(v4), v4);
    }

    #[test]
    fn logins_are_blocked_from_the_fifth_attempt_doubling_up_to_fifteen_minutes() {
        assert_eq!(block_after(1), None);
        assert_eq!(block_after(4), None);
        assert_eq!(block_after(5), Some(Duration::from_secs(5)));
        assert_eq!(block_after(6), Some(Duration::from_secs(10)));
        assert_eq!(block_after(10), Some(Duration::from_secs(160)));
        assert_eq!(block_after(40), Some(LONGEST_BLOCK));
        assert_eq!(block_after(i32::MAX), Some(LONGEST_BLOCK));
    }
}
