//! `FallbackRateLimiter`: a shared limiter (Redis) that hands over to an in-process one while it fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::ports::{Quota, RateDecision, RateLimitError, RateLimiter};

/// Asks `primary`; when it fails (an error or a timeout: the primary bounds its own calls), the
/// same request is decided by `fallback`, and `primary` is skipped for `cool_down`. After the
/// cool-down one request at a time probes `primary` again (the others keep using `fallback`); a
/// success ends the outage. The switch and the recovery are logged once each, not per request.
///
/// While `primary` is down the limits hold per process only (each instance counts on its own),
/// and what the fallback counted is not carried back: both are accepted trade-offs (see ADR 0013).
/// Never fails when `fallback` never fails.
pub struct FallbackRateLimiter {
    primary: Arc<dyn RateLimiter>,
    fallback: Arc<dyn RateLimiter>,
    cool_down: Duration,
    /// `Some(until)` while `primary` is considered down.
    down_until: Mutex<Option<Instant>>,
    /// Whether a probe of `primary` is out.
    probing: AtomicBool,
}

/// Where one request goes.
enum Route {
    Primary,
    Probe,
    Fallback,
}

impl FallbackRateLimiter {
    /// The default time `primary` is skipped after a failure.
    pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(1);

    #[must_use]
    pub fn new(
        primary: Arc<dyn RateLimiter>,
        fallback: Arc<dyn RateLimiter>,
        cool_down: Duration,
    ) -> Self {
        Self {
            primary,
            fallback,
            cool_down,
            down_until: Mutex::new(None),
            probing: AtomicBool::new(false),
        }
    }

    /// Whether requests are being decided by the fallback (the primary failed and has not
    /// answered since).
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.down_until().is_some()
    }

    fn down_until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // Every write replaces the value whole: a poisoned lock still holds a valid one.
        self.down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn route(&self) -> Route {
        match *self.down_until() {
            None => Route::Primary,
            Some(until) if Instant::now() < until => Route::Fallback,
            Some(_) => {
                if self
                    .probing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    Route::Probe
                } else {
                    Route::Fallback
                }
            }
        }
    }

    fn failed(&self, error: &RateLimitError) {
        let mut down = self.down_until();
        if down.is_none() {
            tracing::warn!(
                %error,
                cool_down_ms = self.cool_down.as_millis(),
                "the shared rate limiter failed; limiting in process (per instance) until it answers again"
            );
        }
        *down = Some(Instant::now() + self.cool_down);
    }

    fn recovered(&self) {
        let mut down = self.down_until();
        if down.take().is_some() {
            tracing::info!("the shared rate limiter answers again; limits are shared again");
        }
    }
}

impl std::fmt::Debug for FallbackRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackRateLimiter")
            .field("cool_down", &self.cool_down)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

/// Clears the probe flag however the probe ends (also when the request is cancelled).
struct ProbeGuard<'a>(&'a AtomicBool);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[async_trait]
impl RateLimiter for FallbackRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, RateLimitError> {
        let probe = match self.route() {
            Route::Fallback => return self.fallback.check(key, quota).await,
            Route::Primary => None,
            Route::Probe => Some(ProbeGuard(&self.probing)),
        };
        match self.primary.check(key, quota).await {
            Ok(decision) => {
                if probe.is_some() {
                    self.recovered();
                }
                Ok(decision)
            }
            Err(error) => {
                self.failed(&error);
                self.fallback.check(key, quota).await
            }
        }
    }
}
