//! The GCRA arithmetic both limiters share, in whole microseconds: the in-process limiter runs it
//! here, the Redis script runs the same steps in Lua.

use std::time::Duration;

use domain::ports::{Quota, RateDecision};

/// A quota as GCRA sees it: one request every `interval`, at most `tolerance` of credit ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    limit: u32,
    /// `period / limit`, at least 1 µs.
    pub(crate) interval: u64,
    /// `interval * limit` (at most `period`): `limit` requests fit at once.
    pub(crate) tolerance: u64,
}

/// What one check did to a key's theoretical arrival time (TAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Counted: the key's TAT is now `tat` (`wait` µs after now).
    Allowed { tat: u64, wait: u64 },
    /// Not counted: the key is full for `reset` µs more, and one request fits in `retry` µs.
    Refused { reset: u64, retry: u64 },
}

impl Gcra {
    pub(crate) fn of(quota: Quota) -> Self {
        let limit = quota.limit();
        let period = u64::try_from(quota.period().as_micros()).unwrap_or(u64::MAX);
        let interval = (period / u64::from(limit)).max(1);
        Self {
            limit,
            interval,
            tolerance: interval.saturating_mul(u64::from(limit)),
        }
    }

    /// Checks one request at `now` against the key's stored TAT (`None` when it has none).
    pub(crate) fn check(&self, now: u64, tat: Option<u64>) -> Outcome {
        let tat = tat.unwrap_or(now).max(now);
        let next = tat.saturating_add(self.interval);
        let wait = next - now;
        if wait > self.tolerance {
            Outcome::Refused {
                reset: tat - now,
                retry: wait - self.tolerance,
            }
        } else {
            Outcome::Allowed { tat: next, wait }
        }
    }

    /// The decision for an outcome reported as (allowed, µs until reset, µs until retry).
    pub(crate) fn decision(&self, allowed: bool, reset: u64, retry: u64) -> RateDecision {
        if allowed {
            let left = self.tolerance.saturating_sub(reset) / self.interval;
            RateDecision {
                allowed: true,
                limit: self.limit,
                remaining: u32::try_from(left).unwrap_or(self.limit).min(self.limit),
                reset_after: Duration::from_micros(reset),
                retry_after: None,
            }
        } else {
            RateDecision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_after: Duration::from_micros(reset),
                retry_after: Some(Duration::from_micros(retry.max(1))),
            }
        }
    }

    /// The decision of an [`Outcome`].
    pub(crate) fn decide(&self, outcome: Outcome) -> RateDecision {
        match outcome {
            Outcome::Allowed { wait, .. } => self.decision(true, wait, 0),
            Outcome::Refused { reset, retry } => self.decision(false, reset, retry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(limit: u32, millis: u64) -> Gcra {
        Gcra::of(Quota::new(limit, Duration::from_millis(millis)).expect("a valid quota"))
    }

    /// Runs `n` checks at `now`, threading the TAT; returns the decisions and the final TAT.
    fn burst(
        gcra: &Gcra,
        now: u64,
        mut tat: Option<u64>,
        n: usize,
    ) -> (Vec<RateDecision>, Option<u64>) {
        let mut decisions = Vec::new();
        for _ in 0..n {
            let outcome = gcra.check(now, tat);
            if let Outcome::Allowed { tat: next, .. } = outcome {
                tat = Some(next);
            }
            decisions.push(gcra.decide(outcome));
        }
        (decisions, tat)
    }

    #[test]
    fn a_fresh_key_allows_its_limit_at_once_then_refuses() {
        let gcra = quota(3, 3_000);
        let (decisions, _) = burst(&gcra, 1_000_000, None, 4);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0, 0]);
        assert!(decisions[..3].iter().all(|d| d.allowed));
        let refused = decisions[3];
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(refused.reset_after, Duration::from_secs(3));
        assert_eq!(decisions[0].reset_after, Duration::from_secs(1));
    }

    #[test]
    fn capacity_comes_back_one_interval_at_a_time() {
        let gcra = quota(2, 1_000);
        let (_, tat) = burst(&gcra, 0, None, 2);
        assert!(!gcra.decide(gcra.check(499_999, tat)).allowed);
        let (later, tat) = burst(&gcra, 500_000, tat, 2);
        assert!(later[0].allowed && !later[1].allowed);
        let (rested, _) = burst(&gcra, 10_000_000, tat, 3);
        assert_eq!(
            rested.iter().filter(|d| d.allowed).count(),
            2,
            "a rested key has its whole limit, no more"
        );
    }

    #[test]
    fn an_interval_is_never_zero() {
        let gcra = Gcra::of(Quota::new(u32::MAX, Duration::from_micros(10)).expect("valid"));
        assert_eq!(gcra.interval, 1);
    }
}
