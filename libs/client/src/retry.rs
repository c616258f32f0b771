//! When and how long to wait before sending an idempotent call again.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

/// Exponential backoff with full jitter: attempt `n` (from 1) waits a random time up to
/// `min(max_delay, base_delay * 2^(n-1))`, so clients that failed together do not come back
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 never retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before attempt `attempt + 1`, after `attempt` failed ones.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let mut bytes = [0u8; 4];
        // Without randomness, wait the whole ceiling: slower, never wrong.
        let fraction = match SystemRandom::new().fill(&mut bytes) {
            Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
            Err(_) => 1.0,
        };
        ceiling.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let policy = RetryPolicy::default();
        for attempt in 1..30 {
            let ceiling =
                (policy.base_delay * 2u32.pow((attempt - 1).min(20))).min(policy.max_delay);
            assert!(policy.delay(attempt) <= ceiling);
        }
    }
}
