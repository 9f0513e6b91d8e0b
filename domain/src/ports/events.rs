//! The event bus port (committed domain events, relayed from the outbox in commit order, fanned out
//! to every instance's subscribers) and the relay's cursors.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{BoxError, RepositoryError, StoredEvent};

/// Why the bus could not publish or deliver.
#[derive(Debug, thiserror::Error)]
pub enum EventBusError {
    /// The subscriber fell so far behind that the bus dropped events for it (`n` of them, when
    /// known). The subscription stays usable from the newest events on; a subscriber that must
    /// not miss anything resynchronises from its source of truth.
    #[error("the subscriber fell behind; {0} events were skipped")]
    Lagged(u64),
    /// The bus is shutting down; no more events will come on this subscription.
    #[error("the event bus is closed")]
    Closed,
    /// The bus's backing service failed or did not answer in time.
    #[error("the event bus is unavailable")]
    Unavailable(#[source] BoxError),
}

/// Committed events, in sequence (commit) order, for every subscriber.
///
/// Delivery is at least once: after a relay restart an event may be published again.
/// Implementations drop an event whose sequence is not above the last one they published, so
/// subscribers normally see each event once, but they must still be idempotent (by `event.id`, or
/// by the version the event carries).
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes `events` (ascending sequences), skipping those whose sequence is not above the
    /// last published one.
    ///
    /// # Errors
    /// [`EventBusError::Unavailable`] when the bus cannot take them; none or some may have been
    /// published (publishing again is safe).
    async fn publish(&self, events: &[StoredEvent]) -> Result<(), EventBusError>;

    /// A subscription to every event published from now on.
    ///
    /// # Errors
    /// [`EventBusError::Unavailable`] when the bus cannot be reached.
    async fn subscribe(&self) -> Result<Box<dyn EventSubscription>, EventBusError>;
}

/// One subscriber's view of the bus.
#[async_trait]
pub trait EventSubscription: Send {
    /// The next event, waiting for one.
    ///
    /// # Errors
    /// - [`EventBusError::Lagged`]: events were skipped; the next call goes on with newer ones;
    /// - [`EventBusError::Closed`]: the bus is gone;
    /// - [`EventBusError::Unavailable`]: the backing service failed; the next call retries.
    async fn next(&mut self) -> Result<StoredEvent, EventBusError>;
}

/// Where each outbox relay stands (the last sequence it published) and which process may run it
/// now: a lease, so that one relay publishes at a time and another takes over when it dies.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RelayCursors: Send + Sync {
    /// Takes the lease of relay `name` for `holder` until `until`, or renews it, unless another
    /// holder's lease runs past `now`. Returns the position to resume after (`0` for a new relay)
    /// when `holder` holds the lease, `None` when another holder does.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<i64>, RepositoryError>;

    /// Records that `holder` has published everything up to `position`. Returns `false`, changing
    /// nothing, when `holder` no longer holds the lease.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn advance(
        &self,
        name: &str,
        holder: &str,
        position: i64,
    ) -> Result<bool, RepositoryError>;
}
