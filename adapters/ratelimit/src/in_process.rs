//! `InProcessRateLimiter`: GCRA over a bounded moka map whose entries expire when their key is full again.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::ports::{Quota, RateDecision, RateLimitError, RateLimiter};
use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::Op;

use crate::gcra::{Gcra, Outcome};

/// One process's limiter: a key's theoretical arrival time (µs since the limiter was made) in a
/// moka map of at most `max_keys` entries. An entry expires when its key has its whole limit again
/// (nothing is lost: a missing key is a rested key), so idle keys cost nothing. When more than
/// `max_keys` keys are busy at once, the least used ones are forgotten and start afresh: memory is
/// bounded first. Limits hold within this process only. Never fails.
#[derive(Clone)]
pub struct InProcessRateLimiter {
    store: Cache<String, u64>,
    epoch: Instant,
}

impl InProcessRateLimiter {
    /// Keys kept by [`InProcessRateLimiter::default`].
    pub const DEFAULT_MAX_KEYS: u64 = 100_000;

    /// A limiter that keeps at most `max_keys` busy keys (at least 1).
    #[must_use]
    pub fn new(max_keys: u64) -> Self {
        let epoch = Instant::now();
        Self {
            store: Cache::builder()
                .max_capacity(max_keys.max(1))
                .expire_after(UntilRested { epoch })
                .build(),
            epoch,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Default for InProcessRateLimiter {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_KEYS)
    }
}

impl std::fmt::Debug for InProcessRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessRateLimiter")
            .field("keys", &self.store.entry_count())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, RateLimitError> {
        let gcra = Gcra::of(quota);
        let mut outcome = None;
        // Atomic per key: concurrent checks of one key run one after the other.
        self.store
            .entry(key.to_owned())
            .and_compute_with(|entry| {
                let decided = gcra.check(self.now(), entry.map(moka::Entry::into_value));
                outcome = Some(decided);
                std::future::ready(match decided {
                    Outcome::Allowed { tat, .. } => Op::Put(tat),
                    Outcome::Refused { .. } => Op::Nop,
                })
            })
            .await;
        let outcome = outcome.ok_or_else(|| {
            RateLimitError::Unavailable("the in-process limiter did not decide".to_owned())
        })?;
        Ok(gcra.decide(outcome))
    }
}

/// An entry lives until its theoretical arrival time: then its key is rested.
struct UntilRested {
    epoch: Instant,
}

impl UntilRested {
    fn left(&self, tat: u64, now: Instant) -> Duration {
        (self.epoch + Duration::from_micros(tat)).saturating_duration_since(now)
    }
}

impl Expiry<String, u64> for UntilRested {
    fn expire_after_create(&self, _: &String, tat: &u64, created_at: Instant) -> Option<Duration> {
        Some(self.left(*tat, created_at))
    }

    fn expire_after_update(
        &self,
        _: &String,
        tat: &u64,
        updated_at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.left(*tat, updated_at))
    }
}
