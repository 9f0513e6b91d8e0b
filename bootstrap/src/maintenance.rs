//! Housekeeping that runs inside `server serve` until the job queue takes it over: purging expired
//! idempotency records, and logging the cache's and the events' counters (until the metrics endpoint
//! exports them).

use std::sync::Arc;
use std::time::Duration;

use application::caching::CachedMarketRepository;
use application::events::EventCounters;
use domain::ports::{CacheTierStats, Clock, IdempotencyStore};

/// How often expired idempotency records are deleted.
pub const PURGE_EVERY: Duration = Duration::from_secs(15 * 60);

/// Deletes expired idempotency records every [`PURGE_EVERY`], forever; spawn it on the runtime
/// and drop it to stop. Failures are logged and retried at the next tick.
pub async fn purge_idempotency_records(store: Arc<dyn IdempotencyStore>, clock: Arc<dyn Clock>) {
    let mut ticks = tokio::time::interval(PURGE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.purge_expired(clock.now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired idempotency records purged"),
            Err(error) => tracing::warn!(%error, "purging idempotency records failed"),
        }
    }
}

/// How often the counters are logged.
pub const COUNTERS_EVERY: Duration = Duration::from_secs(60);

/// Logs the cache's hit, miss and error counters per tier and the events received by type every
/// [`COUNTERS_EVERY`] when they moved, forever; spawn it on the runtime and drop it to stop.
pub async fn log_counters(markets: CachedMarketRepository, events: EventCounters) {
    let mut ticks = tokio::time::interval(COUNTERS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: (Vec<CacheTierStats>, Vec<(&'static str, u64)>) = (Vec::new(), Vec::new());
    loop {
        ticks.tick().await;
        let now = (markets.stats(), events.snapshot());
        if now == last {
            continue;
        }
        for (event_type, received) in &now.1 {
            tracing::info!(event_type, received, "events received");
        }
        for tier in &now.0 {
            tracing::info!(
                tier = tier.tier,
                hits = tier.hits,
                misses = tier.misses,
                errors = tier.errors,
                "cache counters"
            );
        }
        last = now;
    }
}
