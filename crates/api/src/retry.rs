//! Retry policies: when a failed attempt is tried again, and when Hookwire gives up.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How retry delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// `interval_seconds × 2^(n-1)` before retry `n`, with ±20 % jitter, at most one day.
    Exponential,
    /// `interval_seconds` before every retry.
    Fixed,
}

/// A webhook's retry policy. `{"strategy": "fixed", "interval_seconds": 3600,
/// "max_age_seconds": 172800}` is "hourly for two days".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub strategy: Strategy,
    /// Retries after the first attempt; 0 means one attempt only.
    #[schema(maximum = 100)]
    pub max_retries: u32,
    /// Base delay in seconds.
    #[schema(minimum = 1, maximum = 86400)]
    pub interval_seconds: u32,
    /// No retry is scheduled later than this many seconds after the first attempt.
    #[schema(maximum = 2592000)]
    pub max_age_seconds: u32,
}

/// The longest delay between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

impl RetryPolicy {
    /// The delay before the next attempt, after `attempts` attempts have been made, or `None`
    /// when the policy is used up. `age` is the time since the first attempt; `jitter` is a
    /// number in `[0, 1)` (random in production, fixed in tests).
    pub fn next_delay(&self, attempts: u32, age: Duration, jitter: f64) -> Option<Duration> {
        if attempts > self.max_retries {
            return None;
        }
        let base = Duration::from_secs(u64::from(self.interval_seconds));
        let delay = match self.strategy {
            Strategy::Fixed => base,
            Strategy::Exponential => {
                let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
                let raw = base.saturating_mul(factor).min(MAX_DELAY);
                raw.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
            }
        };
        let max_age = Duration::from_secs(u64::from(self.max_age_seconds));
        (age + delay <= max_age).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(strategy: Strategy) -> RetryPolicy {
        RetryPolicy {
            strategy,
            max_retries: 3,
            interval_seconds: 10,
            max_age_seconds: 3600,
        }
    }

    #[test]
    fn exponential_doubles_with_bounded_jitter_and_stops_after_max_retries() {
        let p = policy(Strategy::Exponential);
        assert_eq!(p.next_delay(1, Duration::ZERO, 0.5), Some(Duration::from_secs(10)));
        assert_eq!(p.next_delay(2, Duration::ZERO, 0.5), Some(Duration::from_secs(20)));
        assert_eq!(p.next_delay(3, Duration::ZERO, 0.0), Some(Duration::from_secs(32)));
        assert_eq!(p.next_delay(4, Duration::ZERO, 0.5), None);
    }

    #[test]
    fn fixed_interval_stops_at_max_age() {
        let p = RetryPolicy {
            strategy: Strategy::Fixed,
            max_retries: 1000,
            interval_seconds: 3600,
            max_age_seconds: 172_800,
        };
        assert_eq!(
            p.next_delay(5, Duration::from_secs(3600 * 5), 0.3),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(p.next_delay(48, Duration::from_secs(3600 * 47 + 1), 0.3), None);
    }
}
