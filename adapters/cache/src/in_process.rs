//! `InProcessCache`: the cache port in this process's memory (moka), bounded in bytes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::ports::{Cache, CacheEntry, CacheError, CacheTierStats};
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};

use crate::bounded_ttl;
use crate::counters::TierCounters;

/// What an entry costs besides its key and bytes, in bytes (moka's bookkeeping, the version, the
/// time to live); it also makes tombstones count towards the bound.
const ENTRY_OVERHEAD: usize = 64;

/// An entry as the cache keeps it: shared, so that a read clones a pointer.
#[derive(Debug)]
struct Stored {
    version: i64,
    value: Option<Box<[u8]>>,
    ttl: Duration,
}

/// The weight of an entry: its key, its bytes and [`ENTRY_OVERHEAD`], at most `u32::MAX`.
fn weight(key: &str, stored: &Stored) -> u32 {
    let bytes = key.len() + stored.value.as_ref().map_or(0, |value| value.len()) + ENTRY_OVERHEAD;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Every entry lives for its own time to live from its last write; reads do not extend it.
struct PerEntryTtl;

impl Expiry<String, Arc<Stored>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The cache port in this process's memory.
///
/// Entries are weighed by the length of their key and bytes (plus a small fixed overhead), and the
/// least useful are evicted once the total passes `max_bytes` (an entry heavier than that is
/// never kept). Expired entries are never returned. Generations live in a map beside the entries
/// and are never evicted. Reads are counted (tier `"memory"`, see [`Cache::stats`]). Cloning gives
/// another handle on the same cache.
#[derive(Clone)]
pub struct InProcessCache {
    entries: moka::future::Cache<String, Arc<Stored>>,
    generations: Arc<Mutex<HashMap<String, u64>>>,
    max_bytes: u64,
    counters: TierCounters,
}

impl InProcessCache {
    /// An empty cache holding at most about `max_bytes` of keys and values.
    #[must_use]
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .name("adapter-cache")
            .max_capacity(max_bytes)
            .weigher(|key: &String, stored: &Arc<Stored>| weight(key, stored))
            .expire_after(PerEntryTtl)
            .build();
        Self {
            entries,
            generations: Arc::new(Mutex::new(HashMap::new())),
            max_bytes,
            counters: TierCounters::default(),
        }
    }

    /// The counters of this tier (`"memory"`).
    pub(crate) fn tier_stats(&self) -> CacheTierStats {
        self.counters.snapshot("memory")
    }

    /// Forgets every entry at once (none is returned afterwards, even before moka reclaims its
    /// memory); generations are kept, so they never go backwards.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// The bound given to [`InProcessCache::new`].
    #[must_use]
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The weight of the entries held now, in bytes; approximate (moka applies writes and
    /// evictions in batches), for metrics.
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    fn generations(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // The map holds plain numbers, each written whole: a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still good.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InProcessCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessCache")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Cache for InProcessCache {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        let found = self.entries.get(key).await.map(|stored| CacheEntry {
            version: stored.version,
            value: stored.value.as_deref().map(<[u8]>::to_vec),
        });
        self.counters.read(found.as_ref());
        Ok(found)
    }

    async fn set_if_newer(
        &self,
        key: &str,
        entry: &CacheEntry,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let offered = Arc::new(Stored {
            version: entry.version,
            value: entry.value.as_deref().map(Box::from),
            ttl: bounded_ttl(ttl),
        });
        // One compute per key at a time: the comparison and the write are atomic.
        let result = self
            .entries
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let op = match current {
                    Some(current) if current.value().version >= offered.version => Op::Nop,
                    _ => Op::Put(offered),
                };
                std::future::ready(op)
            })
            .await;
        Ok(matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        ))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.invalidate(key).await;
        Ok(())
    }

    async fn generation(&self, namespace: &str) -> Result<u64, CacheError> {
        Ok(self.generations().get(namespace).copied().unwrap_or(0))
    }

    async fn bump_generation(&self, namespace: &str) -> Result<u64, CacheError> {
        let mut generations = self.generations();
        let generation = generations.entry(namespace.to_owned()).or_insert(0);
        *generation = generation.saturating_add(1);
        Ok(*generation)
    }

    fn stats(&self) -> Vec<CacheTierStats> {
        vec![self.tier_stats()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: i64, bytes: usize) -> CacheEntry {
        CacheEntry {
            version,
            value: Some(vec![7; bytes]),
        }
    }

    #[test]
    fn an_entry_weighs_its_key_its_bytes_and_the_overhead() {
        let stored = Stored {
            version: 1,
            value: Some(vec![0; 100].into()),
            ttl: Duration::from_secs(1),
        };
        assert_eq!(weight("abc", &stored), 103 + 64);
        let tombstone = Stored {
            value: None,
            ..stored
        };
        assert_eq!(weight("abc", &tombstone), 3 + 64);
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_byte_bound() {
        let cache = InProcessCache::new(10_000);
        for index in 0..200 {
            let stored = cache
                .set_if_newer(
                    &format!("key-{index:03}"),
                    &entry(1, 500),
                    Duration::from_secs(60),
                )
                .await
                .expect("the in-process cache answers");
            assert!(stored);
        }
        cache.entries.run_pending_tasks().await;
        assert!(
            cache.weighted_size() <= 10_000,
            "{} bytes held",
            cache.weighted_size()
        );
        assert!(cache.entries.entry_count() <= 10_000 / 571 + 1);
    }

    #[tokio::test]
    async fn an_entry_heavier_than_the_bound_is_not_kept() {
        let cache = InProcessCache::new(1_000);
        cache
            .set_if_newer("big", &entry(1, 2_000), Duration::from_secs(60))
            .await
            .expect("the in-process cache answers");
        cache.entries.run_pending_tasks().await;
        assert_eq!(cache.get("big").await.expect("an answer"), None);
        assert_eq!(cache.weighted_size(), 0);
    }

    #[tokio::test]
    async fn a_zero_ttl_keeps_the_entry_for_at_most_a_moment() {
        let cache = InProcessCache::new(1_000_000);
        cache
            .set_if_newer("k", &entry(1, 1), Duration::ZERO)
            .await
            .expect("the in-process cache answers");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(cache.get("k").await.expect("an answer"), None);
    }

    #[tokio::test]
    async fn clones_share_entries_and_generations() {
        let cache = InProcessCache::new(1_000_000);
        let other = cache.clone();
        cache
            .set_if_newer("k", &entry(3, 1), Duration::from_secs(60))
            .await
            .expect("the in-process cache answers");
        cache.bump_generation("n").await.expect("an answer");
        assert_eq!(other.get("k").await.expect("an answer"), Some(entry(3, 1)));
        assert_eq!(other.generation("n").await.expect("an answer"), 1);
    }

    #[tokio::test]
    async fn clear_forgets_entries_and_keeps_generations() {
        let cache = InProcessCache::new(1_000_000);
        cache
            .set_if_newer("k", &entry(5, 1), Duration::from_secs(60))
            .await
            .expect("the in-process cache answers");
        cache.bump_generation("n").await.expect("an answer");
        cache.clear();
        assert_eq!(cache.get("k").await.expect("an answer"), None);
        assert_eq!(cache.generation("n").await.expect("an answer"), 1);
        // A forgotten entry no longer blocks older versions.
        assert!(
            cache
                .set_if_newer("k", &entry(1, 1), Duration::from_secs(60))
                .await
                .expect("the in-process cache answers")
        );
        assert_eq!(cache.get("k").await.expect("an answer"), Some(entry(1, 1)));
        assert_eq!(cache.bump_generation("n").await.expect("an answer"), 2);
    }

    #[tokio::test]
    async fn reads_are_counted() {
        let cache = InProcessCache::new(1_000_000);
        cache
            .set_if_newer("k", &entry(1, 1), Duration::from_secs(60))
            .await
            .expect("the in-process cache answers");
        cache.get("k").await.expect("an answer");
        cache.get("k").await.expect("an answer");
        cache.get("missing").await.expect("an answer");
        assert_eq!(
            cache.stats(),
            vec![CacheTierStats {
                tier: "memory",
                hits: 2,
                misses: 1,
                errors: 0
            }]
        );
    }
}
