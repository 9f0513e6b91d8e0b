//! The event pipeline inside `server serve`: the outbox relay (one instance at a time holds its
//! lease) and, on every instance, the forwarding of bus events to local subscribers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use application::events::{Relay, RelayRound};
use domain::ports::{EventBus, EventBusError, StoredEvent};

/// The longest pause after failures, of the relay or of a subscription.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Runs `relay` forever: rounds back to back while there is something to publish, every `poll`
/// when there is not, every `standby` while another instance holds the lease, with a growing
/// pause after failures. Spawn it and abort it to stop.
pub async fn run_relay(mut relay: Relay, poll: Duration, standby: Duration) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let pause = match relay.round().await {
            Ok(RelayRound::Published(0)) => poll,
            Ok(RelayRound::Published(_)) => Duration::ZERO,
            Ok(RelayRound::Standby) => standby,
            Err(error) => {
                tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "the outbox relay failed; retrying");
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                pause
            }
        };
        if pause.is_zero() {
            backoff = FIRST_BACKOFF;
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Hands every event of `bus` to `deliver`, forever (until the bus closes): subscribes again
/// after a failure; skipped events (a lagging subscriber) are logged.
pub async fn forward<F, Fut>(bus: Arc<dyn EventBus>, deliver: F)
where
    F: Fn(StoredEvent) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut subscription = match bus.subscribe().await {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(error = %error, "subscribing to the event bus failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        loop {
            match subscription.next().await {
                Ok(event) => deliver(event).await,
                Err(EventBusError::Lagged(skipped)) => {
                    tracing::warn!(
                        skipped,
                        "an event subscriber fell behind and skipped events"
                    );
                }
                Err(EventBusError::Closed) => return,
                Err(error) => {
                    tracing::warn!(error = %error, "the event subscription failed; subscribing again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    break;
                }
            }
        }
    }
}
