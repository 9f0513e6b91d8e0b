//! `TieredCache`: an in-process cache in front of Redis, kept coherent by Redis pub/sub.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis;
use domain::ports::{Cache, CacheEntry, CacheError, CacheTierStats};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::breaker::{Admission, CircuitBreaker};
use crate::invalidation::{Change, Invalidation};
use crate::{InProcessCache, RedisCache, RedisCacheConfig, RedisConfigError, bounded_ttl};

/// The first wait before the subscriber connects again; it doubles after every failure.
const RECONNECT_MIN: Duration = Duration::from_millis(50);

/// The longest wait before the subscriber connects again.
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// How the two tiers and the circuit breaker behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TieredCacheConfig {
    /// The bound of the in-process tier (L1), in bytes of keys and values.
    pub l1_max_bytes: u64,
    /// How long an entry stays in L1 at most (less when it has less left to live in Redis).
    pub l1_ttl: Duration,
    /// Consecutive Redis failures (errors or timeouts) that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses every Redis call before it lets one probe through.
    pub breaker_open_for: Duration,
    /// How often the subscriber pings Redis on its connection, to notice a link that went silent
    /// (it then stops using L1 until it is subscribed again). The ping may take this long, or
    /// `command_timeout` if that is longer.
    pub heartbeat: Duration,
}

impl Default for TieredCacheConfig {
    fn default() -> Self {
        Self {
            l1_max_bytes: 16 * 1024 * 1024,
            l1_ttl: Duration::from_secs(30),
            breaker_failures: 3,
            breaker_open_for: Duration::from_secs(1),
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// The circuit breaker refused the call.
#[derive(Debug, thiserror::Error)]
#[error("the Redis circuit breaker is open")]
struct BreakerOpen;

/// Another call is starting a new cache epoch; this one does not wait for it.
#[derive(Debug, thiserror::Error)]
#[error("the cache is recovering from an outage")]
struct Recovering;

/// A two-tier cache: an [`InProcessCache`] (L1) in front of a [`RedisCache`] (L2), for several
/// instances sharing one Redis.
///
/// - **Coherence.** Every change to L2 is published (see [`RedisCache`]); a background subscriber
///   evicts what other instances changed from this instance's L1. L1 is used only while the
///   subscriber is subscribed (it could miss changes otherwise), and is emptied whenever it
///   subscribes or loses its connection. An L1 fill after an L2 read is skipped (or undone) when
///   any invalidation arrived since the read began, so a late reader never caches what a writer
///   just replaced.
/// - **Circuit breaker.** After `breaker_failures` consecutive L2 failures, every L2 call fails at
///   once for `breaker_open_for`; then one probe is let through, whose success closes it.
/// - **Cache epoch.** A failed L2 write, or the breaker opening, may have hidden a change from
///   the other instances: the cache is then *dirty*, does not use L1, and on its next successful
///   contact with Redis starts a new epoch ([`RedisCache::bump_epoch`]) before anything else, so
///   that no instance serves an entry cached before (each empties its L1 on the `flush` message).
///
/// Counters: [`Cache::stats`] gives the `"memory"` tier (a read skipped because L1 was unusable
/// is a miss) and the `"redis"` tier (calls refused by the breaker are errors). Cloning gives
/// another handle on the same cache; the subscriber stops when the last handle is dropped.
#[derive(Clone)]
pub struct TieredCache {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    l2: RedisCache,
    breaker: CircuitBreaker,
    /// Held while a new epoch is being started, so that only one call does it.
    recovering: tokio::sync::Mutex<()>,
    l1_ttl: Duration,
    /// L2 failures that `l2` does not count itself: refusals, failed probes.
    l2_errors: AtomicU64,
    subscriber: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// What the cache and its subscriber share.
struct Shared {
    l1: InProcessCache,
    /// The generations known here, kept up to date by `g` messages; under this lock the
    /// invalidation counter moves whenever they are forgotten.
    generations: Mutex<HashMap<String, u64>>,
    subscribed: AtomicBool,
    /// Invalidations heard or made so far (and forgettings of everything): an L1 fill is kept
    /// only if this did not move since its L2 read began.
    invalidations: AtomicU64,
    /// Reads that skipped L1 because it was unusable.
    l1_skipped: AtomicU64,
    /// Times the cache was marked dirty, and the latest of them that a new epoch covers.
    dirty_marks: AtomicU64,
    dirty_cleaned: AtomicU64,
    origin: Arc<str>,
}

impl Shared {
    fn generations(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // Plain numbers, each written whole: a poisoned lock is still good.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets L1 and the known generations, and voids the fills under way.
    fn forget_all(&self) {
        let mut generations = self.generations();
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.l1.clear();
        generations.clear();
    }

    /// Evicts `key` from L1 and voids the fills under way. (The counter moves first: a fill
    /// that checked it before still lands before this eviction.)
    async fn evict(&self, key: &str) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        // The in-process cache cannot fail.
        let _ = self.l1.delete(key).await;
    }

    /// `namespace` is at `generation` at least.
    fn learn_generation(&self, namespace: &str, generation: u64) {
        merge(&mut self.generations(), namespace, generation);
    }

    fn is_dirty(&self) -> bool {
        self.dirty_marks.load(Ordering::SeqCst) > self.dirty_cleaned.load(Ordering::SeqCst)
    }

    fn mark_dirty(&self) {
        self.dirty_marks.fetch_add(1, Ordering::SeqCst);
    }

    /// Applies one message heard on the invalidation channel.
    async fn hear(&self, payload: &[u8]) {
        let Some(message) = std::str::from_utf8(payload)
            .ok()
            .and_then(Invalidation::parse)
        else {
            // Not understood (a newer format?): forgetting everything is always safe.
            self.forget_all();
            return;
        };
        if message.origin == &*self.origin {
            return;
        }
        match message.change {
            Change::Stored { key, .. } | Change::Deleted { key } => self.evict(key).await,
            Change::Generation {
                generation,
                namespace,
            } => {
                let mut generations = self.generations();
                self.invalidations.fetch_add(1, Ordering::SeqCst);
                merge(&mut generations, namespace, generation);
            }
            Change::Flush { .. } => self.forget_all(),
        }
    }
}

/// Raises `namespace` in `generations` to `generation` (never lowers it).
fn merge(generations: &mut HashMap<String, u64>, namespace: &str, generation: u64) {
    match generations.get_mut(namespace) {
        Some(known) => *known = (*known).max(generation),
        None => {
            generations.insert(namespace.to_owned(), generation);
        }
    }
}

/// Why a new epoch was not started.
enum RecoveryFailure {
    /// Another call is starting it.
    Busy,
    /// Redis did not answer.
    Redis(CacheError),
}

impl From<RecoveryFailure> for CacheError {
    fn from(failure: RecoveryFailure) -> Self {
        match failure {
            RecoveryFailure::Busy => CacheError(Box::new(Recovering)),
            RecoveryFailure::Redis(error) => error,
        }
    }
}

impl TieredCache {
    /// A tiered cache on the Redis at `url`, whose subscriber is spawned on the current Tokio
    /// runtime. It does not wait for Redis: until the subscriber is subscribed, every call goes
    /// to Redis (and fails when it is down); the subscriber keeps trying to connect, with capped
    /// exponential backoff and jitter.
    ///
    /// # Errors
    /// [`RedisConfigError`] when the URL or the Redis configuration is invalid (see
    /// [`RedisCache::connect`]), or when called outside a Tokio runtime.
    pub fn connect(
        url: &str,
        redis: RedisCacheConfig,
        tiers: TieredCacheConfig,
    ) -> Result<Self, RedisConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            RedisConfigError::Invalid("a tiered cache must be created on a Tokio runtime")
        })?;
        if tiers.heartbeat.is_zero() {
            return Err(RedisConfigError::Invalid("the heartbeat must not be zero"));
        }
        let l2 = RedisCache::connect(url, redis)?;
        let client = redis::Client::open(url).map_err(RedisConfigError::Url)?;
        let shared = Arc::new(Shared {
            l1: InProcessCache::new(tiers.l1_max_bytes),
            generations: Mutex::new(HashMap::new()),
            subscribed: AtomicBool::new(false),
            invalidations: AtomicU64::new(0),
            l1_skipped: AtomicU64::new(0),
            dirty_marks: AtomicU64::new(0),
            dirty_cleaned: AtomicU64::new(0),
            origin: l2.origin().into(),
        });
        let subscriber = Subscriber {
            shared: Arc::clone(&shared),
            client,
            channel: l2.invalidation_channel().to_owned(),
            connect_timeout: l2.connect_timeout(),
            heartbeat: tiers.heartbeat,
            ping_timeout: tiers.heartbeat.max(l2.command_timeout()),
        };
        let subscriber = runtime.spawn(subscriber.run());
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                breaker: CircuitBreaker::new(tiers.breaker_failures, tiers.breaker_open_for),
                recovering: tokio::sync::Mutex::new(()),
                l1_ttl: tiers.l1_ttl,
                l2_errors: AtomicU64::new(0),
                l2,
                subscriber,
            }),
        })
    }

    /// Whether the subscriber is subscribed now (and so L1 may be used).
    #[must_use]
    pub fn is_subscribed(&self) -> bool {
        self.inner.shared.subscribed.load(Ordering::SeqCst)
    }

    /// The circuit breaker's state: `"closed"`, `"open"` or `"half_open"`.
    #[must_use]
    pub fn breaker_state(&self) -> &'static str {
        self.inner.breaker.state_name()
    }

    /// Whether a change may have been hidden from the other instances since the last new epoch
    /// (L1 is then unused, and the next contact with Redis starts a new epoch).
    #[must_use]
    pub fn is_dirty(&self) -> bool {
        self.inner.shared.is_dirty()
    }

    /// The Redis tier.
    #[must_use]
    pub fn redis(&self) -> &RedisCache {
        &self.inner.l2
    }

    /// Whether L1 may be used now: subscribed, not dirty, and the breaker closed.
    fn l1_usable(&self) -> bool {
        let inner = &*self.inner;
        inner.shared.subscribed.load(Ordering::SeqCst)
            && !inner.shared.is_dirty()
            && inner.breaker.is_closed()
    }

    /// The invalidation counter before an L2 call, when L1 is usable: what a fill after the call
    /// compares against.
    fn snapshot(&self) -> Option<u64> {
        self.l1_usable()
            .then(|| self.inner.shared.invalidations.load(Ordering::SeqCst))
    }

    /// Puts `entry` in L1 unless an invalidation arrived since `seen` (then, or if one arrives
    /// while it is put, it is not kept). Returns whether it was kept.
    async fn fill(&self, key: &str, entry: &CacheEntry, ttl: Duration, seen: Option<u64>) -> bool {
        let shared = &self.inner.shared;
        let unchanged = || shared.invalidations.load(Ordering::SeqCst) == seen.unwrap_or(u64::MAX);
        if seen.is_none() || !unchanged() || !self.l1_usable() {
            return false;
        }
        let ttl = bounded_ttl(ttl).min(self.inner.l1_ttl);
        // The in-process cache cannot fail.
        let stored = shared
            .l1
            .set_if_newer(key, entry, ttl)
            .await
            .unwrap_or(false);
        if !unchanged() {
            let _ = shared.l1.delete(key).await;
            return false;
        }
        stored
    }

    /// `call` on L2 through the circuit breaker, after starting a new epoch if the cache is
    /// dirty. A failed `write` marks the cache dirty, as does the breaker opening.
    async fn l2_call<T, F, Fut>(&self, write: bool, call: F) -> Result<T, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, CacheError>>,
    {
        let inner = &*self.inner;
        match inner.breaker.admit() {
            Admission::Refused => {
                inner.l2_errors.fetch_add(1, Ordering::Relaxed);
                return Err(CacheError(Box::new(BreakerOpen)));
            }
            Admission::Probe(probe) => {
                let proven = if inner.shared.is_dirty() {
                    let recovered = self.recover().await;
                    if matches!(recovered, Err(RecoveryFailure::Busy)) {
                        inner.l2_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    recovered.map_err(CacheError::from)
                } else {
                    let pinged = inner.l2.ping_within(inner.l2.command_timeout()).await;
                    if pinged.is_err() {
                        inner.l2_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    pinged
                };
                match proven {
                    Ok(()) => probe.succeeded(),
                    Err(error) => {
                        probe.failed();
                        return Err(error);
                    }
                }
            }
            Admission::Allowed => {
                if inner.shared.is_dirty() {
                    match self.recover().await {
                        Ok(()) => {}
                        Err(RecoveryFailure::Busy) => {
                            inner.l2_errors.fetch_add(1, Ordering::Relaxed);
                            return Err(RecoveryFailure::Busy.into());
                        }
                        Err(RecoveryFailure::Redis(error)) => {
                            self.failed(false);
                            return Err(error);
                        }
                    }
                }
            }
        }
        let result = call().await;
        match &result {
            Ok(_) => inner.breaker.succeeded(),
            Err(_) => self.failed(write),
        }
        result
    }

    /// An admitted L2 call failed.
    fn failed(&self, write: bool) {
        let opened = self.inner.breaker.failed();
        if opened || write {
            self.inner.shared.mark_dirty();
        }
    }

    /// Starts a new epoch (every instance forgets its L1) if the cache is dirty, then forgets
    /// L1 here; one call at a time, the others do not wait.
    async fn recover(&self) -> Result<(), RecoveryFailure> {
        let inner = &*self.inner;
        let Ok(_recovering) = inner.recovering.try_lock() else {
            return Err(RecoveryFailure::Busy);
        };
        let marks = inner.shared.dirty_marks.load(Ordering::SeqCst);
        if marks <= inner.shared.dirty_cleaned.load(Ordering::SeqCst) {
            return Ok(());
        }
        inner
            .l2
            .bump_epoch()
            .await
            .map_err(RecoveryFailure::Redis)?;
        inner.shared.forget_all();
        inner
            .shared
            .dirty_cleaned
            .fetch_max(marks, Ordering::SeqCst);
        Ok(())
    }
}

impl fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("l1", &self.inner.shared.l1)
            .field("l2", &self.inner.l2)
            .field("subscribed", &self.is_subscribed())
            .field("breaker", &self.breaker_state())
            .field("dirty", &self.is_dirty())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Cache for TieredCache {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        let shared = &self.inner.shared;
        let seen = self.snapshot();
        if seen.is_some() {
            if let Some(entry) = shared.l1.get(key).await? {
                return Ok(Some(entry));
            }
        } else {
            shared.l1_skipped.fetch_add(1, Ordering::Relaxed);
        }
        let found = self
            .l2_call(false, || self.inner.l2.get_with_ttl(key))
            .await?;
        Ok(match found {
            Some((entry, left)) => {
                self.fill(key, &entry, left, seen).await;
                Some(entry)
            }
            None => None,
        })
    }

    async fn set_if_newer(
        &self,
        key: &str,
        entry: &CacheEntry,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let seen = self.snapshot();
        let stored = self
            .l2_call(true, || self.inner.l2.set_if_newer(key, entry, ttl))
            .await;
        // Whatever L1 held is older than what L2 holds now, unless this very entry replaces it.
        if !matches!(stored, Ok(true)) || !self.fill(key, entry, ttl, seen).await {
            self.inner.shared.evict(key).await;
        }
        stored
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let deleted = self.l2_call(true, || self.inner.l2.delete(key)).await;
        self.inner.shared.evict(key).await;
        deleted
    }

    async fn generation(&self, namespace: &str) -> Result<u64, CacheError> {
        let shared = &self.inner.shared;
        let seen = self.snapshot();
        if seen.is_some()
            && let Some(&known) = shared.generations().get(namespace)
        {
            return Ok(known);
        }
        let generation = self
            .l2_call(false, || self.inner.l2.generation(namespace))
            .await?;
        if let Some(seen) = seen {
            let mut generations = shared.generations();
            if shared.invalidations.load(Ordering::SeqCst) == seen {
                merge(&mut generations, namespace, generation);
            }
        }
        Ok(generation)
    }

    async fn bump_generation(&self, namespace: &str) -> Result<u64, CacheError> {
        let generation = self
            .l2_call(true, || self.inner.l2.bump_generation(namespace))
            .await?;
        self.inner.shared.learn_generation(namespace, generation);
        Ok(generation)
    }

    fn stats(&self) -> Vec<CacheTierStats> {
        let inner = &*self.inner;
        let mut memory = inner.shared.l1.tier_stats();
        memory.misses += inner.shared.l1_skipped.load(Ordering::Relaxed);
        let mut redis = inner.l2.tier_stats();
        redis.errors += inner.l2_errors.load(Ordering::Relaxed);
        vec![memory, redis]
    }
}

/// The background task that listens to the invalidation channel.
struct Subscriber {
    shared: Arc<Shared>,
    client: redis::Client,
    channel: String,
    connect_timeout: Duration,
    heartbeat: Duration,
    ping_timeout: Duration,
}

impl Subscriber {
    /// Subscribes, listens until the connection fails, and again, forever (until aborted).
    async fn run(self) {
        let mut backoff = RECONNECT_MIN;
        loop {
            if let Some((sink, stream)) = self.subscribe().await {
                self.shared.forget_all();
                self.shared.subscribed.store(true, Ordering::SeqCst);
                backoff = RECONNECT_MIN;
                self.listen(sink, stream).await;
                self.shared.subscribed.store(false, Ordering::SeqCst);
                self.shared.forget_all();
            }
            // Between half and all of `backoff`, so that instances do not reconnect in step.
            let wait = backoff.mul_f64(rand::random_range(0.5..=1.0));
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    }

    /// A connection subscribed to the channel, within `connect_timeout`.
    async fn subscribe(&self) -> Option<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
        let subscribing = async {
            let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
            sink.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>((sink, stream))
        };
        tokio::time::timeout(self.connect_timeout, subscribing)
            .await
            .ok()?
            .ok()
    }

    /// Applies the messages until the connection closes or a heartbeat goes unanswered.
    async fn listen(&self, mut sink: redis::aio::PubSubSink, mut stream: redis::aio::PubSubStream) {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.shared.hear(message.get_payload_bytes()).await,
                    None => return,
                },
                _ = heartbeat.tick() => {
                    let pong = tokio::time::timeout(
                        self.ping_timeout,
                        sink.ping::<redis::Value>(),
                    )
                    .await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_only_move_forward() {
        let mut generations = HashMap::new();
        merge(&mut generations, "n", 3);
        merge(&mut generations, "n", 2);
        assert_eq!(generations.get("n"), Some(&3));
        merge(&mut generations, "n", 5);
        assert_eq!(generations.get("n"), Some(&5));
    }

    #[tokio::test]
    async fn a_tiered_cache_needs_a_nonzero_heartbeat() {
        let refused = TieredCache::connect(
            "redis://127.0.0.1:1",
            RedisCacheConfig::default(),
            TieredCacheConfig {
                heartbeat: Duration::ZERO,
                ..TieredCacheConfig::default()
            },
        );
        assert!(matches!(refused, Err(RedisConfigError::Invalid(_))));
    }

    #[test]
    fn a_tiered_cache_needs_a_runtime() {
        let refused = TieredCache::connect(
            "redis://127.0.0.1:1",
            RedisCacheConfig::default(),
            TieredCacheConfig::default(),
        );
        assert!(matches!(refused, Err(RedisConfigError::Invalid(_))));
    }

    #[tokio::test]
    async fn a_redis_that_is_down_at_start_is_no_obstacle() {
        let cache = TieredCache::connect(
            "redis://127.0.0.1:1",
            RedisCacheConfig::default(),
            TieredCacheConfig {
                breaker_failures: 2,
                ..TieredCacheConfig::default()
            },
        )
        .expect("a valid configuration");
        assert!(!cache.is_subscribed());
        assert!(cache.get("k").await.is_err());
        assert!(cache.get("k").await.is_err());
        assert_eq!(cache.breaker_state(), "open");
        assert!(
            cache.is_dirty(),
            "an opened breaker may have hidden a change"
        );
        let started = std::time::Instant::now();
        assert!(cache.get("k").await.is_err());
        assert!(started.elapsed() < Duration::from_millis(20));
        let stats = cache.stats();
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].tier, stats[0].misses), ("memory", 3));
        assert_eq!((stats[1].tier, stats[1].errors), ("redis", 3));
    }
}
