//! The event bus port's contract, run against the in-process bus and the Redis stream bus, and
//! how the Redis bus behaves across instances and when its connection drops.

use std::time::Duration;

use adapter_events::{InProcessEventBus, RedisEventBus, RedisEventBusConfig};
use chrono::Utc;
use domain::ports::{EventBus, EventBusError, EventSubscription, StoredEvent};
use domain::{DomainEvent, MarketId, RecordedEvent};
use tests::fault_proxy::FaultProxy;
use uuid::Uuid;

/// How long a test waits for an event that must come.
const PATIENCE: Duration = Duration::from_secs(5);

/// How long a test waits to be sure that nothing more comes.
const QUIET: Duration = Duration::from_millis(400);

/// How many events a subscriber may fall behind in the contract tests, but the lag test.
const CAPACITY: usize = 1_000;

/// Generates one test per adapter for each listed `async fn(Fixture)`: `in_process::<name>` and
/// `redis::<name>` (skipped loudly when Redis is unavailable, failing under
/// `REQUIRE_SERVICES=1`).
macro_rules! event_bus_contract_tests {
    ($($test:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Fixture::InProcess).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    // The `TestRedis` deletes the test's stream when the test ends.
                    if let Some(redis) = tests::TestRedis::start().await {
                        super::$test(super::Fixture::Redis(redis)).await;
                    }
                }
            )*
        }
    };
}

/// Where a test's buses come from.
enum Fixture {
    InProcess,
    /// Buses on the stream `{prefix}events` of this test's corner of Redis.
    Redis(tests::TestRedis),
}

impl Fixture {
    /// A bus on which a subscriber may fall `capacity` events behind (for Redis: a stream of at
    /// most `capacity` entries). Every Redis bus of one fixture shares the stream.
    fn bus(&self, capacity: usize) -> Box<dyn EventBus> {
        match self {
            Self::InProcess => Box::new(InProcessEventBus::new(capacity)),
            Self::Redis(redis) => Box::new(redis_bus(redis, redis.url(), capacity)),
        }
    }
}

/// A [`RedisEventBus`] at `url` on the stream of `redis`, patient enough for a busy machine.
fn redis_bus(redis: &tests::TestRedis, url: &str, max_len: usize) -> RedisEventBus {
    RedisEventBus::connect(url, redis_config(redis, max_len)).expect("a valid configuration")
}

fn redis_config(redis: &tests::TestRedis, max_len: usize) -> RedisEventBusConfig {
    RedisEventBusConfig {
        stream_key: format!("{}events", redis.prefix()),
        max_len,
        command_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        block: Duration::from_millis(200),
    }
}

/// An event with this sequence (its market version is the sequence too).
fn stored(sequence: i64) -> StoredEvent {
    StoredEvent {
        sequence,
        event: RecordedEvent {
            id: domain::EventId::from_uuid(Uuid::now_v7()),
            occurred_at: Utc::now(),
            event: DomainEvent::MarketUpdated {
                market_id: MarketId::from_uuid(Uuid::now_v7()),
                version: sequence,
            },
        },
    }
}

fn events(sequences: impl IntoIterator<Item = i64>) -> Vec<StoredEvent> {
    sequences.into_iter().map(stored).collect()
}

async fn publish(bus: &dyn EventBus, events: &[StoredEvent]) {
    bus.publish(events).await.expect("the bus takes the events");
}

async fn subscribe(bus: &dyn EventBus) -> Box<dyn EventSubscription> {
    bus.subscribe().await.expect("a subscription")
}

/// What the next call gives, within [`PATIENCE`].
async fn next_result(
    subscription: &mut dyn EventSubscription,
) -> Result<StoredEvent, EventBusError> {
    tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .expect("the subscription answers in time")
}

/// The next event, within [`PATIENCE`].
async fn next(subscription: &mut dyn EventSubscription) -> StoredEvent {
    next_result(subscription)
        .await
        .unwrap_or_else(|error| panic!("an event, not {error:?}"))
}

/// The next `count` events.
async fn take(subscription: &mut dyn EventSubscription, count: usize) -> Vec<StoredEvent> {
    let mut taken = Vec::with_capacity(count);
    for _ in 0..count {
        taken.push(next(subscription).await);
    }
    taken
}

fn sequences(events: &[StoredEvent]) -> Vec<i64> {
    events.iter().map(|event| event.sequence).collect()
}

/// Nothing comes within [`QUIET`].
async fn assert_quiet(subscription: &mut dyn EventSubscription) {
    if let Ok(result) = tokio::time::timeout(QUIET, subscription.next()).await {
        panic!("nothing more was expected, got {result:?}");
    }
}

event_bus_contract_tests!(
    events_published_after_subscribing_arrive_in_order_with_their_content,
    every_subscriber_gets_every_event,
    publishing_already_published_sequences_again_delivers_nothing_twice,
    events_published_before_subscribing_are_not_delivered,
    a_subscriber_that_falls_too_far_behind_is_told_it_lagged_then_goes_on,
    dropping_the_bus_closes_its_subscriptions,
);

async fn events_published_after_subscribing_arrive_in_order_with_their_content(fixture: Fixture) {
    let bus = fixture.bus(CAPACITY);
    let mut subscription = subscribe(&*bus).await;
    let first = events([1, 2, 3]);
    // Sequences may skip numbers (rolled-back transactions).
    let second = events([5, 9]);
    publish(&*bus, &first).await;
    publish(&*bus, &second).await;
    let received = take(&mut *subscription, 5).await;
    assert_eq!(received, [first, second].concat());
    assert_quiet(&mut *subscription).await;
}

async fn every_subscriber_gets_every_event(fixture: Fixture) {
    let bus = fixture.bus(CAPACITY);
    let mut one = subscribe(&*bus).await;
    let mut other = subscribe(&*bus).await;
    let published = events(1..=10);
    publish(&*bus, &published[..4]).await;
    publish(&*bus, &published[4..]).await;
    assert_eq!(take(&mut *one, 10).await, published);
    assert_eq!(take(&mut *other, 10).await, published);
}

async fn publishing_already_published_sequences_again_delivers_nothing_twice(fixture: Fixture) {
    let bus = fixture.bus(CAPACITY);
    let mut subscription = subscribe(&*bus).await;
    publish(&*bus, &events(1..=3)).await;
    assert_eq!(sequences(&take(&mut *subscription, 3).await), [1, 2, 3]);
    // A relay that restarts publishes its last batch again, with one new event.
    publish(&*bus, &events(2..=4)).await;
    // Or only old ones, or an older one out of order.
    publish(&*bus, &events([1, 3])).await;
    publish(&*bus, &events([6, 5, 7])).await;
    assert_eq!(sequences(&take(&mut *subscription, 3).await), [4, 6, 7]);
    assert_quiet(&mut *subscription).await;
}

async fn events_published_before_subscribing_are_not_delivered(fixture: Fixture) {
    let bus = fixture.bus(CAPACITY);
    publish(&*bus, &events([1, 2])).await;
    let mut subscription = subscribe(&*bus).await;
    publish(&*bus, &events([3])).await;
    assert_eq!(next(&mut *subscription).await.sequence, 3);
    assert_quiet(&mut *subscription).await;
}

async fn a_subscriber_that_falls_too_far_behind_is_told_it_lagged_then_goes_on(fixture: Fixture) {
    let bus = fixture.bus(4);
    let mut subscription = subscribe(&*bus).await;
    for sequence in 1..=20 {
        publish(&*bus, &events([sequence])).await;
    }
    match next_result(&mut *subscription).await {
        Err(EventBusError::Lagged(skipped)) => assert_eq!(skipped, 16),
        other => panic!("Lagged, not {other:?}"),
    }
    assert_eq!(
        sequences(&take(&mut *subscription, 4).await),
        [17, 18, 19, 20]
    );
    publish(&*bus, &events([21])).await;
    assert_eq!(next(&mut *subscription).await.sequence, 21);
}

async fn dropping_the_bus_closes_its_subscriptions(fixture: Fixture) {
    let bus = fixture.bus(CAPACITY);
    let mut subscription = subscribe(&*bus).await;
    publish(&*bus, &events([1])).await;
    assert_eq!(next(&mut *subscription).await.sequence, 1);
    drop(bus);
    assert!(
        matches!(
            next_result(&mut *subscription).await,
            Err(EventBusError::Closed)
        ),
        "a subscription of a dropped bus is closed"
    );
}

// Redis only: several instances, and a dropped connection.

/// `host:port` of the Redis at `url` (`redis://[user:password@]host:port[/db]`).
fn redis_address(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_instances_sharing_a_stream_see_each_others_events() {
    let Some(redis) = tests::TestRedis::start().await else {
        return;
    };
    let one = redis_bus(&redis, redis.url(), CAPACITY);
    let other = redis_bus(&redis, redis.url(), CAPACITY);
    let mut on_one = subscribe(&one).await;
    let mut on_other = subscribe(&other).await;
    publish(&one, &events([1, 2])).await;
    publish(&other, &events([3])).await;
    // The relay moved to the other instance and replays what the first one published.
    publish(&other, &events(1..=4)).await;
    assert_eq!(sequences(&take(&mut *on_one, 4).await), [1, 2, 3, 4]);
    assert_eq!(sequences(&take(&mut *on_other, 4).await), [1, 2, 3, 4]);
    // A relay restarted as a new instance does not publish anything twice either.
    drop(one);
    let restarted = redis_bus(&redis, redis.url(), CAPACITY);
    publish(&restarted, &events(3..=5)).await;
    assert_eq!(next(&mut *on_other).await.sequence, 5);
    assert_quiet(&mut *on_other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_subscriber_whose_connection_drops_resumes_without_losing_events() {
    let Some(redis) = tests::TestRedis::start().await else {
        return;
    };
    let proxy = FaultProxy::start(redis_address(redis.url())).await;
    let publisher = redis_bus(&redis, redis.url(), CAPACITY);
    let reader = redis_bus(&redis, &proxy.redis_url(), CAPACITY);
    let mut subscription = subscribe(&reader).await;
    publish(&publisher, &events([1, 2])).await;
    assert_eq!(sequences(&take(&mut *subscription, 2).await), [1, 2]);

    proxy.cut();
    publish(&publisher, &events(3..=5)).await;
    assert!(
        matches!(
            next_result(&mut *subscription).await,
            Err(EventBusError::Unavailable(_))
        ),
        "a dropped connection is reported"
    );
    // Still down: reconnecting fails, and says so.
    assert!(matches!(
        next_result(&mut *subscription).await,
        Err(EventBusError::Unavailable(_))
    ));
    publish(&publisher, &events([6])).await;

    proxy.restore();
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while received.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription resumes"
        );
        match next_result(&mut *subscription).await {
            Ok(event) => received.push(event.sequence),
            Err(EventBusError::Unavailable(_)) => {}
            Err(other) => panic!("an event or Unavailable, not {other:?}"),
        }
    }
    assert_eq!(received, [3, 4, 5, 6]);
    publish(&publisher, &events([7])).await;
    assert_eq!(next(&mut *subscription).await.sequence, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_makes_publish_and_subscribe_unavailable_in_time() {
    let Some(redis) = tests::TestRedis::start().await else {
        return;
    };
    let proxy = FaultProxy::start(redis_address(redis.url())).await;
    let config = RedisEventBusConfig {
        command_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..redis_config(&redis, CAPACITY)
    };
    let bus = RedisEventBus::connect(&proxy.redis_url(), config).expect("a valid configuration");
    proxy.pause();
    let started = std::time::Instant::now();
    let published = bus.publish(&events([1])).await;
    assert!(
        matches!(published, Err(EventBusError::Unavailable(_))),
        "{published:?}"
    );
    assert!(
        matches!(bus.subscribe().await, Err(EventBusError::Unavailable(_))),
        "subscribing needs Redis"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "both give up within their timeouts, not after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_redis_address_is_read_from_its_url() {
    assert_eq!(redis_address("redis://127.0.0.1:6379"), "127.0.0.1:6379");
    assert_eq!(
        redis_address("redis://user:secret@redis:6380/2"),
        "redis:6380"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_redis_subscriber_counts_missed_events_not_skipped_sequences() {
    let Some(redis) = tests::TestRedis::start().await else {
        return;
    };
    let bus = redis_bus(&redis, redis.url(), 4);
    let mut subscription = subscribe(&bus).await;
    publish(&bus, &events([2, 4, 6, 8])).await;
    assert_eq!(sequences(&take(&mut *subscription, 4).await), [2, 4, 6, 8]);
    // Four more, with gaps: the stream no longer holds what was read, yet nothing was missed.
    publish(&bus, &events([11, 15, 16, 20])).await;
    assert_eq!(
        sequences(&take(&mut *subscription, 4).await),
        [11, 15, 16, 20]
    );
    // Ten more, of which the stream keeps four: six were missed, not the 39 - 20 - 1 numbers.
    publish(&bus, &events([22, 23, 25, 27, 30, 31, 33, 35, 37, 39])).await;
    match next_result(&mut *subscription).await {
        Err(EventBusError::Lagged(skipped)) => assert_eq!(skipped, 6),
        other => panic!("Lagged, not {other:?}"),
    }
    assert_eq!(
        sequences(&take(&mut *subscription, 4).await),
        [33, 35, 37, 39]
    );
    assert_quiet(&mut *subscription).await;
}
