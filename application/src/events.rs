//! The outbox relay: publishes committed events to the event bus in sequence order, at least once,
//! one relay at a time (a lease), and repairs the cache from them (ADR 0011).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::ports::{
    Clock, EventBus, EventBusError, Outbox, RelayCursors, RepositoryError, StoredEvent,
};

use crate::caching::CachedMarketRepository;

/// The relay's name in `relay_cursors`.
pub const EVENT_BUS_RELAY: &str = "event-bus";

/// How the relay works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Events read and published at once, at most.
    pub batch: u64,
    /// How long a lease lasts: when its holder dies, another relay takes over after this.
    pub lease: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 500,
            lease: Duration::from_secs(5),
        }
    }
}

/// Why one round of the relay failed; the next round starts again from the saved position.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the outbox or the relay cursor is unavailable")]
    Store(#[from] RepositoryError),
    #[error("the event bus did not take the events")]
    Bus(#[from] EventBusError),
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRound {
    /// Another relay holds the lease.
    Standby,
    /// Published this many events (0: nothing new).
    Published(usize),
}

/// Reads the outbox after the saved position and publishes to the bus; then saves the position.
/// A crash between the two publishes the batch again (the bus drops sequences it has seen), so
/// nothing is lost and subscribers see each event at least once.
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    cursors: Arc<dyn RelayCursors>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    /// Subscriber run by the relay itself: the shared cache is repaired once, not by every
    /// instance.
    markets: CachedMarketRepository,
    holder: String,
    settings: RelaySettings,
    /// The lease this relay holds: until when, and the position it has reached.
    held: Option<(DateTime<Utc>, i64)>,
}

impl Relay {
    /// A relay that competes for the lease as `holder` (unique per process).
    #[must_use]
    pub fn new(
        outbox: Arc<dyn Outbox>,
        cursors: Arc<dyn RelayCursors>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        markets: CachedMarketRepository,
        holder: String,
        settings: RelaySettings,
    ) -> Self {
        Self {
            outbox,
            cursors,
            bus,
            clock,
            markets,
            holder,
            settings,
            held: None,
        }
    }

    /// Whether this relay held the lease after its last round.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.held.is_some()
    }

    /// One round: take or renew the lease when needed, publish the next batch, save the position.
    ///
    /// # Errors
    /// [`RelayError`]; the lease is given up locally, and the next round resumes from the saved
    /// position.
    pub async fn round(&mut self) -> Result<RelayRound, RelayError> {
        let result = self.try_round().await;
        if result.is_err() {
            self.held = None;
        }
        result
    }

    async fn try_round(&mut self) -> Result<RelayRound, RelayError> {
        let Some(position) = self.lease().await? else {
            return Ok(RelayRound::Standby);
        };
        let events = self.outbox.after(position, self.settings.batch).await?;
        let Some(last) = events.last().map(|event| event.sequence) else {
            return Ok(RelayRound::Published(0));
        };
        self.bus.publish(&events).await?;
        self.repair_cache(&events).await;
        if self
            .cursors
            .advance(EVENT_BUS_RELAY, &self.holder, last)
            .await?
        {
            if let Some((until, _)) = self.held {
                self.held = Some((until, last));
            }
        } else {
            // Another relay took over (this one stalled past its lease): it republishes from the
            // saved position, which the bus deduplicates.
            tracing::warn!(holder = %self.holder, "the relay lost its lease");
            self.held = None;
        }
        Ok(RelayRound::Published(events.len()))
    }

    /// The position to publish after, when this relay holds the lease (renewed once half of it
    /// has run out).
    async fn lease(&mut self) -> Result<Option<i64>, RelayError> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.settings.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(5));
        if let Some((until, position)) = self.held
            && until - now > lease / 2
        {
            return Ok(Some(position));
        }
        let until = now + lease;
        let position = self
            .cursors
            .lease(EVENT_BUS_RELAY, &self.holder, now, until)
            .await?;
        self.held = position.map(|position| (until, position));
        Ok(position)
    }

    async fn repair_cache(&self, events: &[StoredEvent]) {
        for stored in events {
            self.markets.reconcile(&stored.event.event).await;
        }
    }
}

/// Events received from the bus by this instance, by type (a subscriber for metrics).
#[derive(Debug, Clone, Default)]
pub struct EventCounters {
    counts: Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>>,
}

impl EventCounters {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `event`.
    pub fn record(&self, event: &StoredEvent) {
        // Each update is whole: a poisoned lock still holds valid counts.
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(event.event.event.name()).or_insert(0) += 1;
    }

    /// The counts so far, by event type.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(name, count)| (*name, *count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use domain::{DomainEvent, EventId, RecordedEvent, UserId};

    use super::*;

    fn stored(sequence: i64, event: DomainEvent) -> StoredEvent {
        StoredEvent {
            sequence,
            event: RecordedEvent {
                id: EventId::from_uuid(uuid::Uuid::nil()),
                occurred_at: chrono::DateTime::UNIX_EPOCH,
                event,
            },
        }
    }

    #[test]
    fn counters_count_events_by_type() {
        let counters = EventCounters::new();
        let user = UserId::from_uuid(uuid::Uuid::nil());
        for sequence in 1..=3 {
            counters.record(&stored(
                sequence,
                DomainEvent::UserRegistered { user_id: user },
            ));
        }
        counters.record(&stored(
            4,
            DomainEvent::MarketDeleted {
                market_id: domain::MarketId::from_uuid(uuid::Uuid::nil()),
            },
        ));
        assert_eq!(
            counters.snapshot(),
            [("market_deleted", 1), ("user_registered", 3)]
        );
    }
}
