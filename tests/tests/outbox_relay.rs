//! The outbox relay on every backend (in memory, SQLite, PostgreSQL): the `RelayCursors` contract
//! (one lease holder at a time, positions that never go back), and the relay itself: committed
//! events reach the bus in commit order, rolled-back ones never do, and a relay killed mid-stream
//! and restarted (or replaced by another instance) loses nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use adapter_events::InProcessEventBus;
use adapter_memory::{FixedClock, InMemoryStore};
use application::caching::{CachedMarketRepository, MarketRenderer};
use application::events::{EVENT_BUS_RELAY, Relay, RelayRound, RelaySettings};
use application::markets::MarketList;
use chrono::{DateTime, TimeDelta, Utc};
use domain::ports::{Clock, EventBus, EventSubscription};
use domain::{DomainEvent, EventId, Market, MarketId, RecordedEvent};
use tests::Repositories;
use uuid::Uuid;

tests::contract_tests!(
    a_new_relay_starts_at_zero_and_one_holder_leads_at_a_time,
    an_expired_lease_passes_to_another_holder_with_its_position,
    only_the_holder_advances_and_positions_never_go_back,
    committed_events_reach_the_bus_in_commit_order_and_rolled_back_ones_never,
    a_relay_killed_mid_stream_and_replaced_loses_nothing,
    two_relays_publish_each_event_once,
);

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a timestamp")
}

async fn a_new_relay_starts_at_zero_and_one_holder_leads_at_a_time(repositories: Repositories) {
    let cursors = &repositories.relay_cursors;
    assert_eq!(
        cursors
            .lease("bus", "a", at(0), at(5))
            .await
            .expect("a lease"),
        Some(0)
    );
    assert_eq!(
        cursors
            .lease("bus", "b", at(1), at(6))
            .await
            .expect("an answer"),
        None,
        "a's lease runs until 5"
    );
    assert_eq!(
        cursors
            .lease("bus", "a", at(2), at(7))
            .await
            .expect("a renewal"),
        Some(0)
    );
    assert_eq!(
        cursors
            .lease("other", "b", at(2), at(7))
            .await
            .expect("a lease"),
        Some(0),
        "relays are independent"
    );
}

async fn an_expired_lease_passes_to_another_holder_with_its_position(repositories: Repositories) {
    let cursors = &repositories.relay_cursors;
    cursors
        .lease("bus", "a", at(0), at(5))
        .await
        .expect("a lease");
    assert!(cursors.advance("bus", "a", 42).await.expect("advanced"));
    assert_eq!(
        cursors
            .lease("bus", "b", at(6), at(11))
            .await
            .expect("a lease"),
        Some(42),
        "b resumes where a stopped"
    );
    assert_eq!(
        cursors
            .lease("bus", "a", at(7), at(12))
            .await
            .expect("an answer"),
        None,
        "a lost it"
    );
}

async fn only_the_holder_advances_and_positions_never_go_back(repositories: Repositories) {
    let cursors = &repositories.relay_cursors;
    cursors
        .lease("bus", "a", at(0), at(5))
        .await
        .expect("a lease");
    assert!(!cursors.advance("bus", "b", 10).await.expect("an answer"));
    assert!(cursors.advance("bus", "a", 10).await.expect("advanced"));
    cursors.advance("bus", "a", 7).await.expect("an answer");
    assert_eq!(
        cursors
            .lease("bus", "a", at(1), at(6))
            .await
            .expect("a renewal"),
        Some(10)
    );
    assert!(!cursors.advance("never", "a", 1).await.expect("an answer"));
}

/// Renders nothing: these relays repair no cache.
struct NoRenderer;

impl MarketRenderer for NoRenderer {
    fn market(&self, _: &Market) -> Vec<u8> {
        Vec::new()
    }

    fn list(&self, _: &MarketList, _: bool) -> Vec<u8> {
        Vec::new()
    }
}

fn relay(
    repositories: &Repositories,
    bus: &Arc<InProcessEventBus>,
    clock: &Arc<FixedClock>,
    holder: &str,
) -> Relay {
    let bus: Arc<dyn EventBus> = bus.clone();
    let clock: Arc<dyn Clock> = clock.clone();
    Relay::new(
        Arc::clone(&repositories.outbox),
        Arc::clone(&repositories.relay_cursors),
        bus,
        clock,
        CachedMarketRepository::uncached(InMemoryStore::new().markets(), Arc::new(NoRenderer)),
        holder.to_owned(),
        RelaySettings {
            batch: 7,
            lease: Duration::from_secs(5),
        },
    )
}

fn event() -> RecordedEvent {
    RecordedEvent {
        id: EventId::from_uuid(Uuid::now_v7()),
        occurred_at: Utc::now(),
        event: DomainEvent::MarketDeleted {
            market_id: MarketId::from_uuid(Uuid::now_v7()),
        },
    }
}

/// Records `count` events, each in its own committed transaction; returns their ids in order.
async fn commit_events(repositories: &Repositories, count: usize) -> Vec<EventId> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let event = event();
        let transaction = repositories.unit_of_work.begin().await.expect("begin");
        transaction.outbox().record(&event).await.expect("recorded");
        transaction.commit().await.expect("committed");
        ids.push(event.id);
    }
    ids
}

/// Everything the subscription has received by now.
async fn drain(subscription: &mut Box<dyn EventSubscription>) -> Vec<(i64, EventId)> {
    let mut received = Vec::new();
    while let Ok(Ok(event)) =
        tokio::time::timeout(Duration::from_millis(50), subscription.next()).await
    {
        received.push((event.sequence, event.event.id));
    }
    received
}

async fn relay_all(relay: &mut Relay) {
    while relay.round().await.expect("a round") != RelayRound::Published(0) {}
}

async fn committed_events_reach_the_bus_in_commit_order_and_rolled_back_ones_never(
    repositories: Repositories,
) {
    let bus = Arc::new(InProcessEventBus::new(1024));
    let clock = Arc::new(FixedClock::default());
    let mut subscription = bus.subscribe().await.expect("subscribed");
    let first = commit_events(&repositories, 10).await;
    {
        let transaction = repositories.unit_of_work.begin().await.expect("begin");
        transaction
            .outbox()
            .record(&event())
            .await
            .expect("recorded");
        // Dropped without commit: rolled back.
    }
    let second = commit_events(&repositories, 10).await;
    let mut relay = relay(&repositories, &bus, &clock, "only");
    relay_all(&mut relay).await;

    let received = drain(&mut subscription).await;
    let ids: Vec<EventId> = received.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        ids,
        [first, second].concat(),
        "in commit order, nothing else"
    );
    assert!(received.windows(2).all(|pair| pair[0].0 < pair[1].0));
}

async fn a_relay_killed_mid_stream_and_replaced_loses_nothing(repositories: Repositories) {
    let bus = Arc::new(InProcessEventBus::new(4096));
    let clock = Arc::new(FixedClock::default());
    let mut subscription = bus.subscribe().await.expect("subscribed");
    let ids = commit_events(&repositories, 50).await;

    // The first relay publishes two batches, then dies without a word (its lease stays).
    let mut dying = relay(&repositories, &bus, &clock, "dying");
    dying.round().await.expect("a round");
    dying.round().await.expect("a round");
    drop(dying);
    let mut successor = relay(&repositories, &bus, &clock, "successor");
    assert_eq!(
        successor.round().await.expect("a round"),
        RelayRound::Standby,
        "the dead relay's lease still runs"
    );
    clock.advance(TimeDelta::seconds(6));
    relay_all(&mut successor).await;
    let more = commit_events(&repositories, 5).await;
    relay_all(&mut successor).await;

    let received = drain(&mut subscription).await;
    let received_ids: Vec<EventId> = received.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        received_ids,
        [ids, more].concat(),
        "every event, once, in order"
    );
    let last = received.last().map(|(sequence, _)| *sequence);
    assert_eq!(
        repositories
            .relay_cursors
            .lease(EVENT_BUS_RELAY, "successor", clock.now(), clock.now())
            .await
            .expect("a lease"),
        last,
        "the saved position is the last sequence published"
    );
}

async fn two_relays_publish_each_event_once(repositories: Repositories) {
    let bus = Arc::new(InProcessEventBus::new(4096));
    let clock = Arc::new(FixedClock::default());
    let mut subscription = bus.subscribe().await.expect("subscribed");
    let ids = commit_events(&repositories, 30).await;
    let mut first = relay(&repositories, &bus, &clock, "first");
    let mut second = relay(&repositories, &bus, &clock, "second");
    for _ in 0..10 {
        first.round().await.expect("a round");
        second.round().await.expect("a round");
    }
    assert!(first.is_leader() != second.is_leader(), "one leader");
    let received: Vec<EventId> = drain(&mut subscription)
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(received.len(), ids.len());
    assert_eq!(
        received.iter().collect::<BTreeSet<_>>(),
        ids.iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(received, ids);
}
