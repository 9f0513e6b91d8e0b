//! The tiered cache across instances and outages: two `TieredCache`s on one Redis prefix stay
//! coherent, a late read never caches a replaced value, a Redis that hangs, is cut off or is
//! killed makes calls fail fast, and nothing cached before an outage that hid a change is served
//! after it.

use std::future::Future;
use std::time::{Duration, Instant};

use adapter_cache::{RedisCacheConfig, TieredCache, TieredCacheConfig};
use domain::ports::{Cache, CacheEntry, CacheTierStats};
use tests::TestRedis;
use tests::fault_proxy::FaultProxy;
use tests::redis_server::PrivateRedis;

const LONG: Duration = Duration::from_secs(60);

/// How long a change on one instance may take to reach another; normally a few milliseconds.
const PROPAGATION: Duration = Duration::from_secs(1);

/// A short command timeout, for the outage tests.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(150);

/// What a failing call may take beyond [`COMMAND_TIMEOUT`] on a busy machine.
const MARGIN: Duration = Duration::from_millis(150);

/// What a call refused by an open breaker may take.
const REFUSED_WITHIN: Duration = Duration::from_millis(10);

const BREAKER_OPEN_FOR: Duration = Duration::from_millis(200);

fn value(version: i64, bytes: &[u8]) -> CacheEntry {
    CacheEntry {
        version,
        value: Some(bytes.to_vec()),
    }
}

fn tiers() -> TieredCacheConfig {
    TieredCacheConfig {
        l1_max_bytes: 16 * 1024 * 1024,
        l1_ttl: Duration::from_secs(30),
        breaker_failures: 3,
        breaker_open_for: BREAKER_OPEN_FOR,
        heartbeat: Duration::from_millis(100),
    }
}

fn redis_config(prefix: &str, command_timeout: Duration) -> RedisCacheConfig {
    RedisCacheConfig {
        key_prefix: prefix.to_owned(),
        pool_size: 4,
        connect_timeout: Duration::from_millis(500),
        command_timeout,
        wait_timeout: command_timeout,
    }
}

/// `host:port` of a `redis://host:port[/db]` URL.
fn address_of(url: &str) -> String {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Polls `condition` every 2 ms until it holds; panics after `within`. Returns how long it took.
async fn until<F, Fut>(what: &str, within: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A tiered cache on `url` under `prefix`, once subscribed.
async fn subscribed(
    url: &str,
    prefix: &str,
    command_timeout: Duration,
    tiers: TieredCacheConfig,
) -> TieredCache {
    let cache = TieredCache::connect(url, redis_config(prefix, command_timeout), tiers)
        .expect("a valid configuration");
    until("the cache subscribes", Duration::from_secs(3), || async {
        cache.is_subscribed()
    })
    .await;
    cache
}

/// Two subscribed tiered caches on the test's Redis and prefix, with generous timeouts.
async fn two_instances(redis: &TestRedis) -> (TieredCache, TieredCache) {
    let timeout = Duration::from_secs(3);
    let a = subscribed(redis.url(), redis.prefix(), timeout, tiers()).await;
    let b = subscribed(redis.url(), redis.prefix(), timeout, tiers()).await;
    (a, b)
}

async fn get(cache: &TieredCache, key: &str) -> Option<CacheEntry> {
    cache.get(key).await.expect("the cache answers")
}

async fn set(cache: &TieredCache, key: &str, entry: &CacheEntry) -> bool {
    cache
        .set_if_newer(key, entry, LONG)
        .await
        .expect("the cache answers")
}

/// The `(memory, redis)` counters.
fn stats(cache: &TieredCache) -> (CacheTierStats, CacheTierStats) {
    let stats = cache.stats();
    assert_eq!(stats.len(), 2);
    assert_eq!((stats[0].tier, stats[1].tier), ("memory", "redis"));
    (stats[0], stats[1])
}

/// Reads `key` until a read answers `expected` from memory (one that was filled from Redis is
/// kept only if no invalidation arrived meanwhile, such as the one of the write that stored it).
async fn until_in_memory(cache: &TieredCache, key: &str, expected: &CacheEntry) -> Duration {
    until("the entry is cached in memory", PROPAGATION, || async {
        let hits = stats(cache).0.hits;
        let read = get(cache, key).await;
        assert!(
            read.as_ref()
                .is_none_or(|entry| entry.version <= expected.version),
            "{read:?}"
        );
        read.as_ref() == Some(expected) && stats(cache).0.hits == hits + 1
    })
    .await
}

/// Runs `call` and checks that it returned within `bound`; returns its result.
async fn bounded<T>(what: &str, bound: Duration, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    // The outer limit only turns a hang into a failure instead of a stuck test.
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hangs"));
    let elapsed = started.elapsed();
    assert!(
        elapsed < bound,
        "{what} took {elapsed:?}, more than {bound:?}"
    );
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_set_through_one_instance_replaces_what_another_holds_in_memory() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let (a, b) = two_instances(&redis).await;
    assert!(set(&a, "markets:1", &value(1, b"one")).await);
    until_in_memory(&b, "markets:1", &value(1, b"one")).await;

    assert!(set(&a, "markets:1", &value(2, b"two")).await);
    let took = until("B reads the new version", PROPAGATION, || async {
        match get(&b, "markets:1").await {
            Some(entry) if entry == value(2, b"two") => true,
            Some(entry) if entry == value(1, b"one") => false,
            other => panic!("B read {other:?}"),
        }
    })
    .await;
    eprintln!("B read the new version after {took:?}");
    until_in_memory(&b, "markets:1", &value(2, b"two")).await;

    a.delete("markets:1").await.expect("the cache answers");
    until("B sees the deletion", PROPAGATION, || async {
        get(&b, "markets:1").await.is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_bump_on_one_instance_is_seen_by_the_other() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let (a, b) = two_instances(&redis).await;
    // B learns the generation, and from then on answers from memory.
    assert_eq!(b.generation("markets:list").await.expect("an answer"), 0);
    for expected in 1..=3 {
        assert_eq!(
            a.bump_generation("markets:list").await.expect("an answer"),
            expected
        );
        until("B sees the bump", PROPAGATION, || async {
            b.generation("markets:list").await.expect("an answer") == expected
        })
        .await;
    }
    assert_eq!(
        b.bump_generation("markets:list").await.expect("an answer"),
        4
    );
    until("A sees B's bump", PROPAGATION, || async {
        a.generation("markets:list").await.expect("an answer") == 4
    })
    .await;
    assert_eq!(b.generation("markets:list").await.expect("an answer"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_read_does_not_put_a_replaced_value_in_memory() {
    // B reads v1 from Redis; while the (large) reply crawls through a slow link, A writes v2 and
    // B hears of it; then B's read completes. B must not keep v1 in memory.
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let proxy = FaultProxy::start(&address_of(redis.url())).await;
    let a = subscribed(redis.url(), redis.prefix(), Duration::from_secs(3), tiers()).await;
    let quiet = TieredCacheConfig {
        // No heartbeat bytes on the link while the read is under way.
        heartbeat: Duration::from_secs(30),
        ..tiers()
    };
    let b = subscribed(
        &proxy.redis_url(),
        redis.prefix(),
        Duration::from_secs(5),
        quiet,
    )
    .await;

    let large: Vec<u8> = (0..256 * 1024).map(|index| (index % 251) as u8).collect();
    assert!(set(&a, "k", &value(1, &large)).await);
    // A connection in B's pool, and the read script loaded, before the link slows down.
    assert_eq!(get(&b, "other").await, None);

    proxy.delay(Duration::from_millis(10));
    let before = proxy.bytes_to_clients();
    let reader = {
        let b = b.clone();
        tokio::spawn(async move { b.get("k").await })
    };
    until(
        "the large reply starts coming back",
        Duration::from_secs(5),
        || async { proxy.bytes_to_clients() > before + 16 * 1024 },
    )
    .await;
    assert!(set(&a, "k", &value(2, b"two")).await);
    let read = reader
        .await
        .expect("the reader finishes")
        .expect("the cache answers");
    // Versions only: a failure message with 256 KiB of bytes helps nobody.
    assert_eq!(
        read.map(|entry| entry.version),
        Some(1),
        "the read began before the write"
    );
    proxy.delay(Duration::ZERO);

    assert_eq!(
        get(&b, "k").await.map(|entry| entry.version),
        Some(2),
        "v1 was not kept"
    );
    until_in_memory(&b, "k", &value(2, b"two")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_fails_fast_and_what_it_hid_is_never_served_after() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let proxy = FaultProxy::start(&address_of(redis.url())).await;
    let a = subscribed(&proxy.redis_url(), redis.prefix(), COMMAND_TIMEOUT, tiers()).await;
    let b = subscribed(redis.url(), redis.prefix(), COMMAND_TIMEOUT, tiers()).await;
    assert!(set(&a, "k", &value(1, b"one")).await);
    until_in_memory(&b, "k", &value(1, b"one")).await;

    proxy.cut();
    // The database moved to v2, but A cannot tell Redis: v1 stays there and in B's memory.
    let written = bounded(
        "a write on a cut link",
        COMMAND_TIMEOUT + MARGIN,
        a.set_if_newer("k", &value(2, b"two"), LONG),
    )
    .await;
    assert!(written.is_err());
    assert!(a.is_dirty());
    let mut failures = 0;
    while a.breaker_state() == "closed" {
        let read = bounded("a read on a cut link", COMMAND_TIMEOUT + MARGIN, a.get("k")).await;
        assert!(read.is_err(), "{read:?}");
        failures += 1;
        // The failed write was the first of the 3 failures in a row that open it.
        assert!(failures < 3, "the breaker opens after 3 failures in a row");
    }
    assert_eq!(a.breaker_state(), "open");
    for _ in 0..20 {
        let read = bounded("a refused read", REFUSED_WITHIN, a.get("k")).await;
        assert!(read.is_err());
        let written = bounded(
            "a refused write",
            REFUSED_WITHIN,
            a.set_if_newer("k", &value(2, b"two"), LONG),
        )
        .await;
        assert!(written.is_err());
    }
    let (_, l2) = stats(&a);
    assert!(l2.errors >= 40, "{l2:?}");

    proxy.restore();
    // A recovers by itself: its first contact starts a new epoch, which B hears.
    until("A reads again", Duration::from_secs(3), || async {
        a.get("k").await.is_ok()
    })
    .await;
    assert_eq!(a.breaker_state(), "closed");
    assert!(!a.is_dirty());
    assert_eq!(get(&a, "k").await, None, "v1 was cached before the outage");
    until("B forgets v1", PROPAGATION, || async {
        get(&b, "k").await.is_none()
    })
    .await;
    until("A subscribes again", Duration::from_secs(3), || async {
        a.is_subscribed()
    })
    .await;

    // Caching resumes: the application fills the cache again, and both read it.
    assert!(set(&a, "k", &value(2, b"two")).await);
    until_in_memory(&b, "k", &value(2, b"two")).await;
    let (memory, _) = stats(&a);
    assert_eq!(get(&a, "k").await, Some(value(2, b"two")));
    assert_eq!(
        stats(&a).0.hits,
        memory.hits + 1,
        "A caches in memory again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_slow_redis_fails_fast_and_caching_resumes_after() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let proxy = FaultProxy::start(&address_of(redis.url())).await;
    let a = subscribed(&proxy.redis_url(), redis.prefix(), COMMAND_TIMEOUT, tiers()).await;
    assert!(set(&a, "k", &value(1, b"one")).await);
    assert_eq!(get(&a, "k").await, Some(value(1, b"one")));

    for (fault, slow) in [("hanging", false), ("slow", true)] {
        if slow {
            proxy.delay(COMMAND_TIMEOUT * 3);
        } else {
            proxy.pause();
        }
        let mut failures = 0;
        while a.breaker_state() == "closed" {
            // A key not in memory: the read goes to Redis.
            let read = bounded(fault, COMMAND_TIMEOUT + MARGIN, a.get("missing")).await;
            assert!(read.is_err(), "{fault}: {read:?}");
            failures += 1;
            assert!(failures <= 3, "{fault}: the breaker opens after 3 failures");
        }
        // Even what memory holds is not served now: an invalidation may have been missed.
        let read = bounded(fault, REFUSED_WITHIN, a.get("k")).await;
        assert!(read.is_err(), "{fault}: {read:?}");
        until(
            "the subscriber notices the silent link",
            Duration::from_secs(2),
            || async { !a.is_subscribed() },
        )
        .await;

        proxy.restore();
        until("A reads again", Duration::from_secs(3), || async {
            a.get("k").await.is_ok()
        })
        .await;
        until("A subscribes again", Duration::from_secs(3), || async {
            a.is_subscribed()
        })
        .await;
        assert_eq!(a.breaker_state(), "closed");
        assert_eq!(get(&a, "k").await, None, "{fault}: the epoch moved");
        assert!(set(&a, "k", &value(1, b"one")).await);
        let (memory, _) = stats(&a);
        assert_eq!(get(&a, "k").await, Some(value(1, b"one")));
        assert_eq!(
            stats(&a).0.hits,
            memory.hits + 1,
            "{fault}: cached in memory again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_redis_only_ever_fails_calls_quickly() {
    let Some(mut server) = PrivateRedis::start().await else {
        return;
    };
    let a = subscribed(&server.url(), "tiers:", COMMAND_TIMEOUT, tiers()).await;
    assert!(set(&a, "k", &value(1, b"one")).await);

    let (mut answered, mut failed) = (0, 0);
    for round in 0..60 {
        if round == 15 {
            server.kill();
        }
        if round == 35 {
            server.restart().await;
        }
        // Every call ends within its budget, with an answer or a `CacheError`.
        match bounded("a read", COMMAND_TIMEOUT + MARGIN, a.get("k")).await {
            Ok(_) => answered += 1,
            Err(error) => {
                assert_eq!(error.to_string(), "the cache is unavailable");
                failed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(answered >= 15, "{answered} answers before the kill");
    assert!(failed >= 1, "the kill was noticed");

    until("A reads again", Duration::from_secs(3), || async {
        a.get("k").await.is_ok()
    })
    .await;
    until("A subscribes again", Duration::from_secs(3), || async {
        a.is_subscribed()
    })
    .await;
    // The restarted Redis is empty; caching resumes.
    assert_eq!(get(&a, "k").await, None);
    assert!(set(&a, "k", &value(2, b"two")).await);
    let (memory, _) = stats(&a);
    assert_eq!(get(&a, "k").await, Some(value(2, b"two")));
    assert_eq!(stats(&a).0.hits, memory.hits + 1, "cached in memory again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tier_counts_its_hits_misses_and_errors() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let a = subscribed(redis.url(), redis.prefix(), Duration::from_secs(3), tiers()).await;
    let start = stats(&a);
    assert_eq!(get(&a, "missing").await, None);
    let after_miss = stats(&a);
    assert_eq!(after_miss.0.misses, start.0.misses + 1, "memory missed");
    assert_eq!(after_miss.1.misses, start.1.misses + 1, "Redis missed");

    // A value in Redis only (written through A's own Redis tier, whose messages A ignores):
    // Redis answers, then memory does.
    assert!(
        a.redis()
            .set_if_newer("k", &value(1, b"x"), LONG)
            .await
            .expect("Redis answers")
    );
    assert_eq!(get(&a, "k").await, Some(value(1, b"x")));
    let after_fill = stats(&a);
    assert_eq!(after_fill.0.misses, after_miss.0.misses + 1);
    assert_eq!(after_fill.1.hits, after_miss.1.hits + 1);
    assert_eq!(get(&a, "k").await, Some(value(1, b"x")));
    let after_hit = stats(&a);
    assert_eq!(after_hit.0.hits, after_fill.0.hits + 1);
    assert_eq!(after_hit.1, after_fill.1, "Redis was not asked");
    assert_eq!((after_hit.0.errors, after_hit.1.errors), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_the_subscriber() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let proxy = FaultProxy::start(&address_of(redis.url())).await;
    let a = subscribed(&proxy.redis_url(), redis.prefix(), COMMAND_TIMEOUT, tiers()).await;
    let clone = a.clone();
    drop(a);
    // A clone keeps it alive: the heartbeat still flows.
    let before = proxy.bytes_to_clients();
    until("a heartbeat", Duration::from_secs(2), || async {
        proxy.bytes_to_clients() > before
    })
    .await;
    assert!(clone.is_subscribed());
    drop(clone);
    // Past the last handle, no heartbeat flows any more.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = proxy.bytes_to_upstream();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(proxy.bytes_to_upstream(), after, "no more heartbeats");
}
