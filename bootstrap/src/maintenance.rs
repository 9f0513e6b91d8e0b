//! Housekeeping that runs inside `server serve` until the job queue takes it over: purging expired
//! idempotency records.

use std::sync::Arc;
use std::time::Duration;

use domain::ports::{Clock, IdempotencyStore};

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
