//! The rate-limiter port: may one more request under a key go through, given a quota (GCRA).

use std::time::Duration;

use async_trait::async_trait;

/// Why a [`Quota`] cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuota {
    #[error("a quota allows at least one request")]
    ZeroLimit,
    #[error("a quota's period must be longer than zero")]
    ZeroPeriod,
}

/// `limit` requests per `period`, with bursts of up to `limit` at once (the generic cell rate
/// algorithm, GCRA): one request's worth of capacity comes back every `period / limit`, and a key
/// left alone for `period` has its whole `limit` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u32,
    period: Duration,
}

impl Quota {
    /// `limit` requests per `period`.
    ///
    /// # Errors
    /// [`InvalidQuota`] when `limit` is 0 or `period` is zero.
    pub const fn new(limit: u32, period: Duration) -> Result<Self, InvalidQuota> {
        if limit == 0 {
            return Err(InvalidQuota::ZeroLimit);
        }
        if period.is_zero() {
            return Err(InvalidQuota::ZeroPeriod);
        }
        Ok(Self { limit, period })
    }

    /// `limit` requests per minute.
    ///
    /// # Errors
    /// [`InvalidQuota::ZeroLimit`] when `limit` is 0.
    pub const fn per_minute(limit: u32) -> Result<Self, InvalidQuota> {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` requests per hour.
    ///
    /// # Errors
    /// [`InvalidQuota::ZeroLimit`] when `limit` is 0.
    pub const fn per_hour(limit: u32) -> Result<Self, InvalidQuota> {
        Self::new(limit, Duration::from_secs(3_600))
    }

    /// Requests allowed per period, and at once.
    #[must_use]
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// The period the limit is counted over.
    #[must_use]
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// How often one request's worth of capacity comes back: `period / limit`.
    #[must_use]
    pub fn emission_interval(&self) -> Duration {
        self.period / self.limit
    }
}

/// What a limiter decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go through (and was counted).
    pub allowed: bool,
    /// The quota's limit.
    pub limit: u32,
    /// Requests that would still be allowed at once after this one (0 when refused).
    pub remaining: u32,
    /// How long until the key has its whole limit again.
    pub reset_after: Duration,
    /// When refused: how long until one more request would be allowed. `None` when allowed.
    pub retry_after: Option<Duration>,
}

/// The limiter could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The shared store (Redis) did not answer in time, or answered nonsense. The cause is for
    /// logs.
    #[error("the rate limiter is unavailable: {0}")]
    Unavailable(String),
}

/// Counts requests per key against a [`Quota`].
///
/// Contract, for every implementation:
/// - a key never used (or unused for the quota's period) allows `limit` requests at once, then
///   refuses until capacity comes back, one request every `period / limit`;
/// - a refused request is not counted, and says when to retry (`retry_after`, more than zero);
/// - keys are independent;
/// - `check` decides and counts atomically: concurrent callers (on every instance sharing the
///   store) never get more than the quota between them.
///
/// Keys are chosen by the caller (for example `ip:203.0.113.7` or `user:<id>`); the same key
/// should always be checked with the same quota.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Decides whether one more request under `key` fits `quota`, and counts it if so.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the limiter cannot decide (its store is down or too
    /// slow); nothing was counted. In-process limiters never fail.
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, RateLimitError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_needs_a_limit_and_a_period() {
        assert_eq!(
            Quota::new(0, Duration::from_secs(1)),
            Err(InvalidQuota::ZeroLimit)
        );
        assert_eq!(Quota::new(1, Duration::ZERO), Err(InvalidQuota::ZeroPeriod));
        let quota = Quota::per_minute(120).expect("valid");
        assert_eq!(quota.limit(), 120);
        assert_eq!(quota.period(), Duration::from_secs(60));
        assert_eq!(quota.emission_interval(), Duration::from_millis(500));
        assert_eq!(
            Quota::per_hour(20).expect("valid").period(),
            Duration::from_secs(3_600)
        );
    }
}
