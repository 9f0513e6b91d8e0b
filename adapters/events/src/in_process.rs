//! `InProcessEventBus`: the event bus port over a tokio `broadcast` channel, for one process.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use domain::ports::{EventBus, EventBusError, EventSubscription, StoredEvent};
use tokio::sync::broadcast;

/// The most events a subscriber may fall behind; larger capacities are lowered to it (tokio's
/// `broadcast` refuses more than `usize::MAX / 2`).
const MAX_CAPACITY: usize = usize::MAX / 2;

/// The event bus of one process: every subscription gets every event published after it was
/// made, in publish order.
///
/// Publishing is atomic with respect to ordering: events are checked against the last published
/// sequence and sent under one lock, so concurrent publishers never reorder them. A subscriber
/// that falls more than `capacity` events behind gets [`EventBusError::Lagged`] with the number
/// of events it missed, then the oldest events still held. When the bus is dropped, subscribers
/// get what is still buffered for them, then [`EventBusError::Closed`].
pub struct InProcessEventBus {
    sender: broadcast::Sender<StoredEvent>,
    /// The sequence of the last published event, `None` before the first.
    last: Mutex<Option<i64>>,
}

impl InProcessEventBus {
    /// A bus on which a subscriber may fall `capacity` events behind before it lags (at least 1:
    /// a capacity of 0 counts as 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.clamp(1, MAX_CAPACITY));
        Self {
            sender,
            last: Mutex::new(None),
        }
    }

    /// The sequence of the last event published, `None` before the first.
    #[must_use]
    pub fn last_sequence(&self) -> Option<i64> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for InProcessEventBus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("InProcessEventBus")
            .field("subscribers", &self.sender.receiver_count())
            .field("last_sequence", &self.last_sequence())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EventBus for InProcessEventBus {
    async fn publish(&self, events: &[StoredEvent]) -> Result<(), EventBusError> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            if last.is_some_and(|last| event.sequence <= last) {
                continue;
            }
            *last = Some(event.sequence);
            // An error only means that nobody subscribes: the event is then simply not delivered.
            let _ = self.sender.send(event.clone());
        }
        Ok(())
    }

    async fn subscribe(&self) -> Result<Box<dyn EventSubscription>, EventBusError> {
        Ok(Box::new(InProcessSubscription {
            receiver: self.sender.subscribe(),
        }))
    }
}

/// One subscriber's receiver.
struct InProcessSubscription {
    receiver: broadcast::Receiver<StoredEvent>,
}

#[async_trait]
impl EventSubscription for InProcessSubscription {
    async fn next(&mut self) -> Result<StoredEvent, EventBusError> {
        self.receiver.recv().await.map_err(|error| match error {
            broadcast::error::RecvError::Lagged(skipped) => EventBusError::Lagged(skipped),
            broadcast::error::RecvError::Closed => EventBusError::Closed,
        })
    }
}
