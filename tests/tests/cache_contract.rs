//! The cache port's contract, run against the in-process cache, Redis and the tiered cache (both
//! in front of each other), and how the Redis adapter behaves when Redis does not answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_cache::{RedisCache, RedisCacheConfig, RedisProbe};
use domain::ports::{Cache, CacheEntry, HealthProbe};
use uuid::Uuid;

tests::cache_tests!(
    a_missing_key_is_not_found,
    an_entry_round_trips_its_version_and_bytes,
    an_empty_value_is_not_a_tombstone,
    a_large_value_round_trips,
    an_equal_or_older_version_is_refused,
    a_newer_version_replaces_the_entry,
    a_newer_value_replaces_a_tombstone,
    a_newer_tombstone_replaces_a_value,
    a_tombstone_keeps_a_stale_reader_from_writing_back_an_old_value,
    versions_are_compared_exactly_even_at_the_extremes,
    an_entry_is_gone_after_its_ttl,
    a_newer_write_brings_its_own_ttl,
    an_expired_entry_no_longer_blocks_older_versions,
    delete_removes_the_entry_and_lets_any_version_in_again,
    deleting_a_missing_key_succeeds,
    generations_start_at_zero_and_count_every_bump,
    namespaces_and_keys_are_independent,
    what_one_handle_writes_another_reads,
    concurrent_writes_in_any_order_leave_the_newest_version,
    concurrent_bumps_are_all_counted,
);

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);
/// Comfortably past [`SHORT`].
const PAST_SHORT: Duration = Duration::from_millis(500);

fn value(version: i64, bytes: &[u8]) -> CacheEntry {
    CacheEntry {
        version,
        value: Some(bytes.to_vec()),
    }
}

fn tombstone(version: i64) -> CacheEntry {
    CacheEntry {
        version,
        value: None,
    }
}

async fn get(cache: &dyn Cache, key: &str) -> Option<CacheEntry> {
    cache.get(key).await.expect("the cache answers")
}

async fn set(cache: &dyn Cache, key: &str, entry: &CacheEntry, ttl: Duration) -> bool {
    cache
        .set_if_newer(key, entry, ttl)
        .await
        .expect("the cache answers")
}

async fn a_missing_key_is_not_found(cache: Arc<dyn Cache>) {
    assert_eq!(get(&*cache, "markets:nothing-here").await, None);
}

async fn an_entry_round_trips_its_version_and_bytes(cache: Arc<dyn Cache>) {
    let binary: Vec<u8> = (0..=255).collect();
    let entries = [
        ("text", value(3, b"{\"name\":\"Will it rain?\"}")),
        ("empty", value(1, b"")),
        ("binary", value(7, &binary)),
        ("nul-and-crlf", value(2, b"\0\r\n\0")),
        ("tombstone", tombstone(4)),
        ("unversioned", value(0, b"x")),
        ("negative", value(-5, b"y")),
    ];
    for (key, entry) in &entries {
        assert!(set(&*cache, key, entry, LONG).await, "{key} is stored");
    }
    for (key, entry) in &entries {
        assert_eq!(get(&*cache, key).await.as_ref(), Some(entry), "{key}");
    }
}

async fn an_empty_value_is_not_a_tombstone(cache: Arc<dyn Cache>) {
    set(&*cache, "empty", &value(1, b""), LONG).await;
    set(&*cache, "gone", &tombstone(1), LONG).await;
    assert_eq!(
        get(&*cache, "empty").await.and_then(|entry| entry.value),
        Some(Vec::new())
    );
    assert_eq!(
        get(&*cache, "gone").await.map(|entry| entry.value),
        Some(None)
    );
}

async fn a_large_value_round_trips(cache: Arc<dyn Cache>) {
    let bytes: Vec<u8> = (0..1024 * 1024).map(|index| (index % 251) as u8).collect();
    assert!(set(&*cache, "large", &value(1, &bytes), LONG).await);
    assert_eq!(get(&*cache, "large").await, Some(value(1, &bytes)));
}

async fn an_equal_or_older_version_is_refused(cache: Arc<dyn Cache>) {
    assert!(set(&*cache, "k", &value(5, b"five"), LONG).await);
    assert!(!set(&*cache, "k", &value(5, b"another five"), LONG).await);
    assert!(!set(&*cache, "k", &value(4, b"four"), LONG).await);
    assert!(!set(&*cache, "k", &tombstone(5), LONG).await);
    assert!(!set(&*cache, "k", &tombstone(-1), LONG).await);
    assert_eq!(get(&*cache, "k").await, Some(value(5, b"five")));
}

async fn a_newer_version_replaces_the_entry(cache: Arc<dyn Cache>) {
    assert!(set(&*cache, "k", &value(1, b"one"), LONG).await);
    assert!(set(&*cache, "k", &value(2, b"two"), LONG).await);
    assert_eq!(get(&*cache, "k").await, Some(value(2, b"two")));
    assert!(set(&*cache, "k", &value(10, b""), LONG).await);
    assert_eq!(get(&*cache, "k").await, Some(value(10, b"")));
}

async fn a_newer_value_replaces_a_tombstone(cache: Arc<dyn Cache>) {
    assert!(set(&*cache, "k", &tombstone(3), LONG).await);
    assert!(set(&*cache, "k", &value(4, b"back"), LONG).await);
    assert_eq!(get(&*cache, "k").await, Some(value(4, b"back")));
}

async fn a_newer_tombstone_replaces_a_value(cache: Arc<dyn Cache>) {
    assert!(set(&*cache, "k", &value(3, b"alive"), LONG).await);
    assert!(set(&*cache, "k", &tombstone(4), LONG).await);
    assert_eq!(get(&*cache, "k").await, Some(tombstone(4)));
}

async fn a_tombstone_keeps_a_stale_reader_from_writing_back_an_old_value(cache: Arc<dyn Cache>) {
    // A reader loaded version 6, a writer then deleted the row (version 7) and left a tombstone;
    // the reader's late cache fill must not resurrect the row.
    assert!(set(&*cache, "markets:1", &tombstone(7), LONG).await);
    assert!(!set(&*cache, "markets:1", &value(6, b"stale"), LONG).await);
    assert_eq!(get(&*cache, "markets:1").await, Some(tombstone(7)));
}

async fn versions_are_compared_exactly_even_at_the_extremes(cache: Arc<dyn Cache>) {
    // As doubles, i64::MAX - 1 and i64::MAX are the same number.
    assert!(set(&*cache, "max", &value(i64::MAX - 1, b"a"), LONG).await);
    assert!(set(&*cache, "max", &value(i64::MAX, b"b"), LONG).await);
    assert!(!set(&*cache, "max", &value(i64::MAX - 1, b"c"), LONG).await);
    assert_eq!(get(&*cache, "max").await, Some(value(i64::MAX, b"b")));

    assert!(set(&*cache, "min", &value(i64::MIN, b"a"), LONG).await);
    assert!(set(&*cache, "min", &value(i64::MIN + 1, b"b"), LONG).await);
    assert!(!set(&*cache, "min", &value(i64::MIN, b"c"), LONG).await);
    assert!(set(&*cache, "min", &value(-1, b"d"), LONG).await);
    assert!(set(&*cache, "min", &value(0, b"e"), LONG).await);
    assert!(!set(&*cache, "min", &value(-1, b"f"), LONG).await);
    assert!(set(&*cache, "min", &value(9_007_199_254_740_993, b"g"), LONG).await);
    assert!(!set(&*cache, "min", &value(9_007_199_254_740_992, b"h"), LONG).await);
    assert_eq!(
        get(&*cache, "min").await,
        Some(value(9_007_199_254_740_993, b"g"))
    );
}

async fn an_entry_is_gone_after_its_ttl(cache: Arc<dyn Cache>) {
    set(&*cache, "short", &value(1, b"brief"), SHORT).await;
    set(&*cache, "short-tombstone", &tombstone(1), SHORT).await;
    set(&*cache, "long", &value(1, b"lasting"), LONG).await;
    assert!(get(&*cache, "short").await.is_some(), "not expired yet");
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(get(&*cache, "short").await, None);
    assert_eq!(get(&*cache, "short-tombstone").await, None);
    assert_eq!(get(&*cache, "long").await, Some(value(1, b"lasting")));
}

async fn a_newer_write_brings_its_own_ttl(cache: Arc<dyn Cache>) {
    set(&*cache, "lengthened", &value(1, b"a"), SHORT).await;
    set(&*cache, "lengthened", &value(2, b"b"), LONG).await;
    set(&*cache, "shortened", &value(1, b"a"), LONG).await;
    set(&*cache, "shortened", &value(2, b"b"), SHORT).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(get(&*cache, "lengthened").await, Some(value(2, b"b")));
    assert_eq!(get(&*cache, "shortened").await, None);
}

async fn an_expired_entry_no_longer_blocks_older_versions(cache: Arc<dyn Cache>) {
    set(&*cache, "k", &value(5, b"five"), SHORT).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert!(set(&*cache, "k", &value(1, b"one"), LONG).await);
    assert_eq!(get(&*cache, "k").await, Some(value(1, b"one")));
}

async fn delete_removes_the_entry_and_lets_any_version_in_again(cache: Arc<dyn Cache>) {
    set(&*cache, "k", &value(5, b"five"), LONG).await;
    set(&*cache, "other", &value(5, b"kept"), LONG).await;
    cache.delete("k").await.expect("the cache answers");
    assert_eq!(get(&*cache, "k").await, None);
    assert_eq!(get(&*cache, "other").await, Some(value(5, b"kept")));
    assert!(set(&*cache, "k", &value(1, b"one"), LONG).await);
    assert_eq!(get(&*cache, "k").await, Some(value(1, b"one")));
}

async fn deleting_a_missing_key_succeeds(cache: Arc<dyn Cache>) {
    cache
        .delete("never-there")
        .await
        .expect("the cache answers");
    assert_eq!(get(&*cache, "never-there").await, None);
}

async fn generations_start_at_zero_and_count_every_bump(cache: Arc<dyn Cache>) {
    let generation = |namespace| {
        let cache = Arc::clone(&cache);
        async move {
            cache
                .generation(namespace)
                .await
                .expect("the cache answers")
        }
    };
    assert_eq!(generation("markets:list").await, 0);
    for expected in 1..=3 {
        let bumped = cache
            .bump_generation("markets:list")
            .await
            .expect("the cache answers");
        assert_eq!(bumped, expected);
        assert_eq!(generation("markets:list").await, expected);
    }
}

async fn namespaces_and_keys_are_independent(cache: Arc<dyn Cache>) {
    cache.bump_generation("a").await.expect("the cache answers");
    cache.bump_generation("a").await.expect("the cache answers");
    assert_eq!(cache.generation("a").await.expect("an answer"), 2);
    assert_eq!(cache.generation("b").await.expect("an answer"), 0);
    assert_eq!(cache.generation("A").await.expect("an answer"), 0);

    // Keys named like the namespaces hold nothing, and entries do not move generations.
    assert_eq!(get(&*cache, "a").await, None);
    set(&*cache, "b", &value(1, b"b"), LONG).await;
    set(&*cache, "a", &value(9, b"a"), LONG).await;
    assert_eq!(cache.generation("b").await.expect("an answer"), 0);
    assert_eq!(cache.generation("a").await.expect("an answer"), 2);
    assert_eq!(get(&*cache, "a").await, Some(value(9, b"a")));
    assert_eq!(get(&*cache, "b").await, Some(value(1, b"b")));
    cache.delete("a").await.expect("the cache answers");
    assert_eq!(get(&*cache, "b").await, Some(value(1, b"b")));
}

async fn what_one_handle_writes_another_reads(cache: Arc<dyn Cache>) {
    // Read first, so that a tiered cache holds the entry in memory; then overwrite and delete.
    set(&*cache, "k", &value(1, b"one"), LONG).await;
    assert_eq!(get(&*cache, "k").await, Some(value(1, b"one")));
    assert_eq!(get(&*cache, "k").await, Some(value(1, b"one")));
    set(&*cache, "k", &value(2, b"two"), LONG).await;
    assert_eq!(get(&*cache, "k").await, Some(value(2, b"two")));
    cache.delete("k").await.expect("the cache answers");
    assert_eq!(get(&*cache, "k").await, None);
    assert!(set(&*cache, "k", &tombstone(1), LONG).await);
    assert_eq!(get(&*cache, "k").await, Some(tombstone(1)));
}

async fn concurrent_writes_in_any_order_leave_the_newest_version(cache: Arc<dyn Cache>) {
    let mut versions: Vec<i64> = (1..=50).collect();
    versions.sort_by_cached_key(|_| Uuid::new_v4());
    let writers: Vec<_> = versions
        .iter()
        .map(|&version| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let entry = value(version, version.to_string().as_bytes());
                cache
                    .set_if_newer("contended", &entry, LONG)
                    .await
                    .expect("the cache answers")
            })
        })
        .collect();
    let mut stored = 0;
    for writer in writers {
        if writer.await.expect("the writer finishes") {
            stored += 1;
        }
    }
    assert!(stored >= 1, "order {versions:?}");
    assert_eq!(
        get(&*cache, "contended").await,
        Some(value(50, b"50")),
        "order {versions:?}"
    );
}

async fn concurrent_bumps_are_all_counted(cache: Arc<dyn Cache>) {
    let bumps: Vec<_> = (0..20)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .bump_generation("contended")
                    .await
                    .expect("the cache answers")
            })
        })
        .collect();
    let mut seen = Vec::new();
    for bump in bumps {
        seen.push(bump.await.expect("the bump finishes"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
    assert_eq!(cache.generation("contended").await.expect("an answer"), 20);
}

/// Behaviour of the Redis adapter itself: a Redis that does not answer, prefixes, readiness.
mod redis_adapter {
    use super::*;

    /// A TCP server that accepts connections and never says a word; stops when dropped.
    struct SilentServer {
        address: std::net::SocketAddr,
        task: tokio::task::JoinHandle<()>,
    }

    impl SilentServer {
        async fn start() -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a free port");
            let address = listener.local_addr().expect("a bound address");
            let task = tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    held.push(socket);
                }
            });
            Self { address, task }
        }
    }

    impl Drop for SilentServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn cache_at(address: std::net::SocketAddr, command_timeout: Duration) -> RedisCache {
        RedisCache::connect(
            &format!("redis://{address}"),
            RedisCacheConfig {
                key_prefix: "test:unreachable:".to_owned(),
                command_timeout,
                connect_timeout: Duration::from_secs(5),
                wait_timeout: Duration::from_secs(5),
                ..RedisCacheConfig::default()
            },
        )
        .expect("a valid configuration")
    }

    /// Runs every operation of the port on `cache`; each must fail, and return within `bound`.
    async fn every_operation_fails_within(cache: &RedisCache, bound: Duration) {
        let entry = value(1, b"x");
        let operations: Vec<(&str, futures_util::future::BoxFuture<'_, bool>)> = vec![
            ("get", Box::pin(async { cache.get("k").await.is_err() })),
            (
                "set_if_newer",
                Box::pin(async { cache.set_if_newer("k", &entry, LONG).await.is_err() }),
            ),
            (
                "delete",
                Box::pin(async { cache.delete("k").await.is_err() }),
            ),
            (
                "generation",
                Box::pin(async { cache.generation("n").await.is_err() }),
            ),
            (
                "bump_generation",
                Box::pin(async { cache.bump_generation("n").await.is_err() }),
            ),
        ];
        for (name, operation) in operations {
            let started = Instant::now();
            // The outer limit only turns a hang into a failure instead of a stuck test.
            let failed = tokio::time::timeout(Duration::from_secs(30), operation)
                .await
                .unwrap_or_else(|_| panic!("{name} hangs"));
            let elapsed = started.elapsed();
            assert!(failed, "{name} reports an error");
            assert!(
                elapsed < bound,
                "{name} took {elapsed:?}, more than {bound:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_that_never_answers_makes_every_operation_time_out() {
        let server = SilentServer::start().await;
        let command_timeout = Duration::from_millis(200);
        let cache = cache_at(server.address, command_timeout);
        // Generous margin for a busy machine: the point is that it does not hang.
        every_operation_fails_within(&cache, command_timeout + Duration::from_secs(2)).await;
        let started = Instant::now();
        assert!(cache.get("k").await.is_err());
        assert!(started.elapsed() >= command_timeout, "it waited its turn");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_on_a_closed_port_fails_at_once() {
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("a bound address")
        };
        // The command timeout is long: failing fast must come from the refused connection.
        let cache = cache_at(address, Duration::from_secs(10));
        every_operation_fails_within(&cache, Duration::from_secs(3)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_probe_reports_a_redis_that_is_down_as_not_ready() {
        let server = SilentServer::start().await;
        let silent = cache_at(server.address, Duration::from_millis(100));
        let probe = RedisProbe::new(silent);
        assert_eq!(probe.name(), "cache");
        let error = probe.check().await.expect_err("not ready");
        assert_eq!(error.name, "cache");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_probe_reports_a_live_redis_as_ready() {
        let Some((_redis, cache)) = tests::test_cache().await else {
            return;
        };
        cache.ping().await.expect("Redis answers PING");
        RedisProbe::new(cache)
            .check()
            .await
            .expect("a live Redis is ready");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn caches_with_different_prefixes_do_not_see_each_other() {
        let Some((_first, first)) = tests::test_cache().await else {
            return;
        };
        let Some((_second, second)) = tests::test_cache().await else {
            return;
        };
        assert!(set(&first, "k", &value(1, b"first"), LONG).await);
        assert!(set(&second, "k", &value(1, b"second"), LONG).await);
        first.bump_generation("n").await.expect("an answer");
        assert_eq!(get(&first, "k").await, Some(value(1, b"first")));
        assert_eq!(get(&second, "k").await, Some(value(1, b"second")));
        assert_eq!(second.generation("n").await.expect("an answer"), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_epoch_voids_every_entry_but_no_generation() {
        let Some((_redis, cache)) = tests::test_cache().await else {
            return;
        };
        assert!(set(&cache, "k", &value(5, b"five"), LONG).await);
        assert!(set(&cache, "gone", &tombstone(5), LONG).await);
        cache.bump_generation("n").await.expect("an answer");
        assert_eq!(cache.bump_epoch().await.expect("an answer"), 1);
        assert_eq!(get(&cache, "k").await, None);
        assert_eq!(get(&cache, "gone").await, None);
        assert_eq!(cache.generation("n").await.expect("an answer"), 1);
        // An entry of a past epoch no longer blocks older versions.
        assert!(set(&cache, "k", &value(1, b"one"), LONG).await);
        assert!(!set(&cache, "k", &value(1, b"again"), LONG).await);
        assert_eq!(get(&cache, "k").await, Some(value(1, b"one")));
        assert_eq!(cache.bump_epoch().await.expect("an answer"), 2);
        assert_eq!(get(&cache, "k").await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_without_an_epoch_belongs_to_the_first() {
        // Entries written before epochs existed: `{v, b}` without `e`.
        let Some((redis, cache)) = tests::test_cache().await else {
            return;
        };
        let client = ::redis::Client::open(redis.url()).expect("a valid URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        let key = format!("{}e:old", redis.prefix());
        ::redis::pipe()
            .cmd("HSET")
            .arg(&key)
            .arg("v")
            .arg(3)
            .arg("b")
            .arg("x")
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(60_000)
            .query_async::<()>(&mut connection)
            .await
            .expect("Redis answers");
        assert_eq!(get(&cache, "old").await, Some(value(3, b"x")));
        assert!(!set(&cache, "old", &value(2, b"older"), LONG).await);
        cache.bump_epoch().await.expect("an answer");
        assert_eq!(get(&cache, "old").await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_change_is_published_with_its_origin() {
        use futures_util::StreamExt;

        let Some((redis, cache)) = tests::test_cache().await else {
            return;
        };
        let cache = cache.with_origin("me").expect("a valid origin");
        let client = ::redis::Client::open(redis.url()).expect("a valid URL");
        let mut pubsub = client.get_async_pubsub().await.expect("Redis answers");
        pubsub
            .subscribe(cache.invalidation_channel())
            .await
            .expect("Redis answers");
        assert_eq!(
            cache.invalidation_channel(),
            format!("{}invalidations", redis.prefix())
        );
        let mut messages = pubsub.into_on_message();

        assert!(set(&cache, "markets:1", &value(3, b"x"), LONG).await);
        assert!(!set(&cache, "markets:1", &value(2, b"refused"), LONG).await);
        assert!(set(&cache, "a key with spaces", &tombstone(-4), LONG).await);
        cache.delete("markets:1").await.expect("an answer");
        cache
            .bump_generation("markets:list")
            .await
            .expect("an answer");
        cache.bump_epoch().await.expect("an answer");
        cache.get("markets:1").await.expect("an answer");
        cache.generation("markets:list").await.expect("an answer");

        let mut heard = Vec::new();
        while heard.len() < 5 {
            let message = tokio::time::timeout(Duration::from_secs(3), messages.next())
                .await
                .expect("a message within 3 s")
                .expect("the subscription stays open");
            heard.push(message.get_payload::<String>().expect("a text message"));
        }
        assert_eq!(
            heard,
            [
                "me e 3 markets:1",
                "me e -4 a key with spaces",
                "me d markets:1",
                "me g 1 markets:list",
                "me flush 1",
            ]
        );
        // Reads and refused writes publish nothing.
        let more = tokio::time::timeout(Duration::from_millis(100), messages.next()).await;
        assert!(more.is_err(), "nothing more: {more:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_and_failures_are_counted() {
        let Some((_redis, cache)) = tests::test_cache().await else {
            return;
        };
        set(&cache, "k", &value(1, b"x"), LONG).await;
        get(&cache, "k").await;
        get(&cache, "k").await;
        get(&cache, "missing").await;
        let stats = cache.stats();
        assert_eq!(stats.len(), 1);
        assert_eq!(
            (
                stats[0].tier,
                stats[0].hits,
                stats[0].misses,
                stats[0].errors
            ),
            ("redis", 2, 1, 0)
        );

        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("a bound address")
        };
        let down = cache_at(address, Duration::from_secs(1));
        assert!(down.get("k").await.is_err());
        assert!(down.delete("k").await.is_err());
        let stats = down.stats();
        assert_eq!((stats[0].hits, stats[0].misses, stats[0].errors), (0, 0, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_harness_deletes_a_tests_keys_when_it_ends() {
        let Some(redis) = tests::TestRedis::start().await else {
            return;
        };
        let url = redis.url().to_owned();
        let prefix = redis.prefix().to_owned();
        let cache = redis.cache();
        set(&cache, "k", &value(1, b"x"), LONG).await;
        cache.bump_generation("n").await.expect("an answer");
        drop(redis);
        // A fresh handle on the same prefix sees nothing left.
        let after = RedisCache::connect(
            &url,
            RedisCacheConfig {
                key_prefix: prefix,
                command_timeout: Duration::from_secs(3),
                ..RedisCacheConfig::default()
            },
        )
        .expect("a valid configuration");
        assert_eq!(get(&after, "k").await, None);
        assert_eq!(after.generation("n").await.expect("an answer"), 0);
    }
}
