//! The hub: connected clients, their filters and bounded buffers, and a fan-out that never blocks.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use domain::MarketId;
use domain::ports::StoredEvent;
use tokio::sync::{mpsc, oneshot};

use super::message;

/// Most market ids one client's filter may name.
pub const MAX_FILTER_IDS: usize = 100;

/// How the hub behaves. Every field is public so that the composition root can map configuration
/// onto it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Clients connected at once on this instance; one more is refused with
    /// `503 too_many_connections` before upgrading.
    pub max_connections: usize,
    /// Messages buffered for one client; a client whose buffer is full when an event arrives is
    /// dropped ([`Disconnect::TooSlow`]). `0` counts as `1`.
    pub client_buffer: usize,
    /// Page origins (`https://example.com`, scheme and host, port when not the default) allowed
    /// besides the service's own; `*` allows any. Empty: same-origin only. Clients that send no
    /// `Origin` (not browsers) are always allowed.
    pub allowed_origins: Vec<String>,
    /// How often the server pings each client.
    pub heartbeat: Duration,
    /// A client that sends nothing (no pong, no message) for this long is closed
    /// ([`Disconnect::TimedOut`]).
    pub client_timeout: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            client_buffer: 64,
            allowed_origins: Vec::new(),
            heartbeat: Duration::from_secs(10),
            client_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the server ends a connection; each has its WebSocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The client did not keep up: its buffer was full when an event arrived. Close code `4000`,
    /// reason `too slow`: the client missed events and should reload what it shows.
    TooSlow,
    /// The service is shutting down. Close code `1001` (going away).
    ShuttingDown,
    /// No pong or message within `client_timeout`. Close code `4001`, reason `timed out`.
    TimedOut,
}

impl Disconnect {
    /// The WebSocket close code.
    #[must_use]
    pub const fn code(self) -> u16 {
        match self {
            Self::TooSlow => 4000,
            Self::ShuttingDown => 1001,
            Self::TimedOut => 4001,
        }
    }

    /// The close reason sent with the code.
    #[must_use]
    pub const fn reason(self) -> &'static str {
        match self {
            Self::TooSlow => "too slow",
            Self::ShuttingDown => "going away",
            Self::TimedOut => "timed out",
        }
    }
}

/// Why a client cannot connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("too many stream connections (at most {0})")]
    TooManyConnections(usize),
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// Which markets a client hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every market except these.
    All { except: BTreeSet<MarketId> },
    /// Only these markets.
    Only(BTreeSet<MarketId>),
}

/// A filter change that would name too many markets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a filter names at most {MAX_FILTER_IDS} markets")]
pub struct TooManyIds;

impl Filter {
    /// Every market.
    #[must_use]
    pub const fn all() -> Self {
        Self::All {
            except: BTreeSet::new(),
        }
    }

    /// Only `markets`.
    ///
    /// # Errors
    /// [`TooManyIds`] over [`MAX_FILTER_IDS`] distinct ids.
    pub fn only(markets: impl IntoIterator<Item = MarketId>) -> Result<Self, TooManyIds> {
        let set: BTreeSet<MarketId> = markets.into_iter().collect();
        if set.len() > MAX_FILTER_IDS {
            return Err(TooManyIds);
        }
        Ok(Self::Only(set))
    }

    /// Whether events of `market` pass.
    #[must_use]
    pub fn admits(&self, market: MarketId) -> bool {
        match self {
            Self::All { except } => !except.contains(&market),
            Self::Only(markets) => markets.contains(&market),
        }
    }

    /// Starts hearing about `markets` too.
    ///
    /// # Errors
    /// [`TooManyIds`] when the filter would name more than [`MAX_FILTER_IDS`]; then it is unchanged.
    pub fn subscribe(&mut self, markets: &[MarketId]) -> Result<(), TooManyIds> {
        match self {
            Self::All { except } => {
                for market in markets {
                    except.remove(market);
                }
                Ok(())
            }
            Self::Only(set) => extend_bounded(set, markets),
        }
    }

    /// Stops hearing about `markets`.
    ///
    /// # Errors
    /// [`TooManyIds`] when the filter would name more than [`MAX_FILTER_IDS`]; then it is unchanged.
    pub fn unsubscribe(&mut self, markets: &[MarketId]) -> Result<(), TooManyIds> {
        match self {
            Self::All { except } => extend_bounded(except, markets),
            Self::Only(set) => {
                for market in markets {
                    set.remove(market);
                }
                Ok(())
            }
        }
    }
}

fn extend_bounded(set: &mut BTreeSet<MarketId>, markets: &[MarketId]) -> Result<(), TooManyIds> {
    let added = markets
        .iter()
        .filter(|m| !set.contains(m))
        .collect::<BTreeSet<_>>()
        .len();
    if set.len() + added > MAX_FILTER_IDS {
        return Err(TooManyIds);
    }
    set.extend(markets.iter().copied());
    Ok(())
}

/// One connected client as the hub sees it.
struct Client {
    filter: Filter,
    sender: mpsc::Sender<Arc<str>>,
    /// Told why the hub dropped the client.
    disconnect: oneshot::Sender<Disconnect>,
}

struct Inner {
    settings: StreamSettings,
    clients: Mutex<HashMap<u64, Client>>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
}

impl Inner {
    fn clients(&self) -> MutexGuard<'_, HashMap<u64, Client>> {
        // The map stays consistent whatever panicked while holding it: every change is one call.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The real-time hub of one instance: every event published is sent to the connected clients whose
/// filter admits its market. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct MarketStream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MarketStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketStream")
            .field("settings", &self.inner.settings)
            .field("connections", &self.connections())
            .finish()
    }
}

impl MarketStream {
    /// A hub with no clients.
    #[must_use]
    pub fn new(settings: StreamSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                clients: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// The settings it was built with.
    #[must_use]
    pub fn settings(&self) -> &StreamSettings {
        &self.inner.settings
    }

    /// Clients connected now.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.inner.clients().len()
    }

    /// Registers a client hearing about `filter`; it stays registered until the [`Subscriber`] is
    /// dropped or the hub drops it.
    ///
    /// # Errors
    /// [`ConnectError::TooManyConnections`] at `max_connections`; [`ConnectError::ShuttingDown`]
    /// after [`MarketStream::close_all`].
    pub fn connect(&self, filter: Filter) -> Result<Subscriber, ConnectError> {
        let (sender, events) = mpsc::channel(self.inner.settings.client_buffer.max(1));
        let (disconnect, disconnected) = oneshot::channel();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut clients = self.inner.clients();
            if self.inner.shutting_down.load(Ordering::Acquire) {
                return Err(ConnectError::ShuttingDown);
            }
            let max = self.inner.settings.max_connections;
            if clients.len() >= max {
                return Err(ConnectError::TooManyConnections(max));
            }
            clients.insert(
                id,
                Client {
                    filter,
                    sender,
                    disconnect,
                },
            );
        }
        Ok(Subscriber {
            id,
            hub: Arc::clone(&self.inner),
            events,
            disconnected,
            reason: None,
        })
    }

    /// Sends one event to every client whose filter admits its market, without waiting: a client
    /// whose buffer is full is dropped ([`Disconnect::TooSlow`]) and the others are not slowed.
    /// Events about no market (`user_registered`) are never sent. Returns how many clients got it.
    pub fn publish(&self, stored: &StoredEvent) -> usize {
        let Some(market) = stored.event.event.market_id() else {
            return 0;
        };
        if self.connections() == 0 {
            return 0;
        }
        let text: Arc<str> = match message::render(stored) {
            Ok(text) => text.into(),
            Err(error) => {
                tracing::error!(%error, sequence = stored.sequence, "cannot render an event for the stream");
                return 0;
            }
        };
        let mut delivered = 0;
        let mut clients = self.inner.clients();
        let mut dropped = Vec::new();
        for (id, client) in clients.iter() {
            if !client.filter.admits(market) {
                continue;
            }
            match client.sender.try_send(Arc::clone(&text)) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => dropped.push((*id, true)),
                Err(mpsc::error::TrySendError::Closed(_)) => dropped.push((*id, false)),
            }
        }
        for (id, slow) in dropped {
            if let Some(client) = clients.remove(&id)
                && slow
            {
                tracing::info!(client = id, "stream client too slow: dropped");
                client.disconnect.send(Disconnect::TooSlow).ok();
            }
        }
        delivered
    }

    /// Closes every client with [`Disconnect::ShuttingDown`] (1001) and refuses new ones: for
    /// shutdown.
    pub fn close_all(&self) {
        let mut clients = self.inner.clients();
        self.inner.shutting_down.store(true, Ordering::Release);
        let count = clients.len();
        for (_, client) in clients.drain() {
            client.disconnect.send(Disconnect::ShuttingDown).ok();
        }
        if count > 0 {
            tracing::info!(
                clients = count,
                "stream clients told the service is going away"
            );
        }
    }
}

/// What a client receives next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// One event, rendered as the JSON text message sent to clients.
    Event(Arc<str>),
    /// The hub dropped the client: close the connection with this.
    Closed(Disconnect),
}

/// One registered client: its events, in order, and the hub's decision to drop it. Dropping it
/// unregisters the client.
pub struct Subscriber {
    id: u64,
    hub: Arc<Inner>,
    events: mpsc::Receiver<Arc<str>>,
    disconnected: oneshot::Receiver<Disconnect>,
    /// What `disconnected` said, once it said it (a oneshot may not be polled again).
    reason: Option<Disconnect>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("id", &self.id).finish()
    }
}

impl Subscriber {
    /// The next event, or why the hub dropped the client. A drop wins over buffered events: a
    /// client too slow or a service going away is closed at once. Cancel-safe.
    pub async fn next(&mut self) -> Delivery {
        if let Some(reason) = self.reason {
            return Delivery::Closed(reason);
        }
        tokio::select! {
            biased;
            reason = &mut self.disconnected => Delivery::Closed(self.remember(reason.ok())),
            event = self.events.recv() => match event {
                Some(text) => Delivery::Event(text),
                None => Delivery::Closed(self.remember(None)),
            },
        }
    }

    /// Resolves when the hub drops the client (for use while a send is in progress).
    /// Cancel-safe.
    pub async fn dropped(&mut self) -> Disconnect {
        if let Some(reason) = self.reason {
            return reason;
        }
        let reason = (&mut self.disconnected).await.ok();
        self.remember(reason)
    }

    /// A hub that vanished without a word counts as shutting down.
    fn remember(&mut self, reason: Option<Disconnect>) -> Disconnect {
        let reason = reason.unwrap_or(Disconnect::ShuttingDown);
        self.reason = Some(reason);
        reason
    }

    /// Changes the filter with `change`; returns the filter now in force, or `None` when the hub
    /// dropped the client already.
    ///
    /// # Errors
    /// Whatever `change` returns; then the filter is unchanged.
    pub fn change_filter<E>(
        &self,
        change: impl FnOnce(&mut Filter) -> Result<(), E>,
    ) -> Result<Option<Filter>, E> {
        let mut clients = self.hub.clients();
        let Some(client) = clients.get_mut(&self.id) else {
            return Ok(None);
        };
        let mut filter = client.filter.clone();
        change(&mut filter)?;
        client.filter = filter.clone();
        Ok(Some(filter))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.hub.clients().remove(&self.id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::Utc;
    use domain::event::{DomainEvent, RecordedEvent};
    use domain::id::{EventId, PositionId, UserId};
    use domain::money::Amount;
    use domain::position::Side;
    use uuid::Uuid;

    fn market() -> MarketId {
        MarketId::from_uuid(Uuid::now_v7())
    }

    fn opened(sequence: i64, market_id: MarketId, cents: i64) -> StoredEvent {
        StoredEvent {
            sequence,
            event: RecordedEvent {
                id: EventId::from_uuid(Uuid::now_v7()),
                occurred_at: Utc::now(),
                event: DomainEvent::PositionOpened {
                    position_id: PositionId::from_uuid(Uuid::now_v7()),
                    market_id,
                    user_id: UserId::from_uuid(Uuid::now_v7()),
                    side: Side::Yes,
                    amount: Amount::from_cents(cents).unwrap(),
                    yes_volume: Amount::from_cents(cents).unwrap(),
                    no_volume: Amount::ZERO,
                    version: 2,
                },
            },
        }
    }

    fn settings(max_connections: usize, client_buffer: usize) -> StreamSettings {
        StreamSettings {
            max_connections,
            client_buffer,
            ..StreamSettings::default()
        }
    }

    async fn next_json(subscriber: &mut Subscriber) -> serde_json::Value {
        let delivery = tokio::time::timeout(Duration::from_secs(1), subscriber.next())
            .await
            .expect("a delivery in time");
        match delivery {
            Delivery::Event(text) => serde_json::from_str(&text).unwrap(),
            Delivery::Closed(reason) => panic!("closed: {reason:?}"),
        }
    }

    async fn nothing_pending(subscriber: &mut Subscriber) {
        let waited = tokio::time::timeout(Duration::from_millis(50), subscriber.next()).await;
        assert!(waited.is_err(), "nothing was expected: {waited:?}");
    }

    #[tokio::test]
    async fn clients_hear_only_the_markets_their_filter_admits() {
        let hub = MarketStream::new(StreamSettings::default());
        let (a, b) = (market(), market());
        let mut everything = hub.connect(Filter::all()).unwrap();
        let mut only_a = hub.connect(Filter::only([a]).unwrap()).unwrap();
        assert_eq!(hub.connections(), 2);

        assert_eq!(hub.publish(&opened(1, a, 100)), 2);
        assert_eq!(hub.publish(&opened(2, b, 200)), 1);

        let first = next_json(&mut everything).await;
        assert_eq!(first["type"], "position_opened");
        assert_eq!(first["sequence"], 1);
        assert_eq!(first["market_id"], a.to_string());
        assert_eq!(first["payload"]["yes_volume"], "1.00");
        assert_eq!(next_json(&mut everything).await["sequence"], 2);
        assert_eq!(next_json(&mut only_a).await["sequence"], 1);
        nothing_pending(&mut only_a).await;

        only_a.change_filter(|f| f.subscribe(&[b])).unwrap();
        only_a.change_filter(|f| f.unsubscribe(&[a])).unwrap();
        everything.change_filter(|f| f.unsubscribe(&[b])).unwrap();
        hub.publish(&opened(3, a, 300));
        hub.publish(&opened(4, b, 400));
        assert_eq!(next_json(&mut only_a).await["sequence"], 4);
        assert_eq!(next_json(&mut everything).await["sequence"], 3);
        nothing_pending(&mut everything).await;
    }

    #[tokio::test]
    async fn events_about_no_market_are_never_sent() {
        let hub = MarketStream::new(StreamSettings::default());
        let mut client = hub.connect(Filter::all()).unwrap();
        let registered = StoredEvent {
            sequence: 1,
            event: RecordedEvent {
                id: EventId::from_uuid(Uuid::now_v7()),
                occurred_at: Utc::now(),
                event: DomainEvent::UserRegistered {
                    user_id: UserId::from_uuid(Uuid::now_v7()),
                },
            },
        };
        assert_eq!(hub.publish(&registered), 0);
        nothing_pending(&mut client).await;
    }

    #[tokio::test]
    async fn a_slow_client_is_dropped_as_too_slow_and_a_fast_one_keeps_receiving() {
        let hub = MarketStream::new(settings(10, 4));
        let a = market();
        let mut slow = hub.connect(Filter::all()).unwrap();
        let mut fast = hub.connect(Filter::all()).unwrap();
        for sequence in 1..=20 {
            hub.publish(&opened(sequence, a, 100 * sequence));
            assert_eq!(next_json(&mut fast).await["sequence"], sequence);
        }
        assert_eq!(hub.connections(), 1, "the slow client was dropped");
        assert_eq!(slow.next().await, Delivery::Closed(Disconnect::TooSlow));
        assert_eq!(Disconnect::TooSlow.code(), 4000);
        assert_eq!(Disconnect::TooSlow.reason(), "too slow");
        // A filter change after the drop changes nothing and does not panic.
        assert_eq!(slow.change_filter(|f| f.subscribe(&[a])), Ok(None));
        drop(slow);
        assert_eq!(hub.connections(), 1);
    }

    #[tokio::test]
    async fn publishing_to_a_full_client_never_waits() {
        let hub = MarketStream::new(settings(10, 1));
        let _never_reads = hub.connect(Filter::all()).unwrap();
        let started = std::time::Instant::now();
        for sequence in 1..=1000 {
            hub.publish(&opened(sequence, market(), 100));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(hub.connections(), 0);
    }

    #[tokio::test]
    async fn connections_are_limited_and_freed_when_subscribers_drop() {
        let hub = MarketStream::new(settings(2, 4));
        let first = hub.connect(Filter::all()).unwrap();
        let _second = hub.connect(Filter::all()).unwrap();
        assert_eq!(
            hub.connect(Filter::all()).unwrap_err(),
            ConnectError::TooManyConnections(2)
        );
        drop(first);
        assert_eq!(hub.connections(), 1);
        let _third = hub.connect(Filter::all()).unwrap();
        assert_eq!(hub.connections(), 2);
    }

    #[tokio::test]
    async fn close_all_closes_every_client_as_going_away_and_refuses_new_ones() {
        let hub = MarketStream::new(StreamSettings::default());
        let mut one = hub.connect(Filter::all()).unwrap();
        let mut two = hub.connect(Filter::only([market()]).unwrap()).unwrap();
        hub.publish(&opened(1, market(), 100));
        hub.close_all();
        assert_eq!(hub.connections(), 0);
        assert_eq!(one.next().await, Delivery::Closed(Disconnect::ShuttingDown));
        assert_eq!(two.dropped().await, Disconnect::ShuttingDown);
        assert_eq!(Disconnect::ShuttingDown.code(), 1001);
        assert_eq!(
            hub.connect(Filter::all()).unwrap_err(),
            ConnectError::ShuttingDown
        );
    }

    #[test]
    fn filters_name_at_most_a_hundred_markets() {
        let many: Vec<MarketId> = (0..=MAX_FILTER_IDS).map(|_| market()).collect();
        assert_eq!(Filter::only(many.iter().copied()), Err(TooManyIds));
        let mut filter = Filter::only(many[..MAX_FILTER_IDS].iter().copied()).unwrap();
        // Naming ones it has already is fine; one more is not.
        assert_eq!(filter.subscribe(&many[..10]), Ok(()));
        assert_eq!(filter.subscribe(&many[MAX_FILTER_IDS..]), Err(TooManyIds));
        assert!(!filter.admits(many[MAX_FILTER_IDS]));
        let mut all = Filter::all();
        assert_eq!(all.unsubscribe(&many), Err(TooManyIds));
        assert!(all.admits(many[0]));
    }
}
