//! Housekeeping that runs inside `server serve` until the job queue takes it over: purging expired
//! idempotency records, and logging the cache's counters (until the metrics endpoint exports them).

use std::sync::Arc;
use std::time::Duration;

use application::caching::CachedMarketRepository;
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

/// How often the cache's counters are logged.
pub const CACHE_STATS_EVERY: Duration = Duration::from_secs(60);

/// Logs the cache's hit, miss and error counters per tier every [`CACHE_STATS_EVERY`] when they
/// moved, forever; spawn it on the runtime and drop it to stop.
pub async fn log_cache_stats(markets: CachedMarketRepository) {
    let mut ticks = tokio::time::interval(CACHE_STATS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Vec<CacheTierStats> = Vec::new();
    loop {
        ticks.tick().await;
        let stats = markets.stats();
        if stats == last {
            continue;
        }
        for tier in &stats {
            tracing::info!(
                tier = tier.tier,
                hits = tier.hits,
                misses = tier.misses,
                errors = tier.errors,
                "cache counters"
            );
        }
        last = stats;
    }
}
