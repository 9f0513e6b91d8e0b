//! The cache port: versioned byte values with a time to live, and namespaces retired at once by
//! bumping their generation.

use std::time::Duration;

use async_trait::async_trait;

use super::BoxError;

/// What the cache holds under a key: the version of what it represents, and its bytes, or
/// `None` for "known not to exist" (a negative entry, or the tombstone of a deleted value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The version of the cached thing (a market's `version`); `0` for unversioned values.
    pub version: i64,
    pub value: Option<Vec<u8>>,
}

/// Counters of one tier of a cache since the process started, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheTierStats {
    /// `"memory"` for an in-process tier, `"redis"` for Redis.
    pub tier: &'static str,
    /// Reads answered by this tier (tombstones included).
    pub hits: u64,
    /// Reads this tier could not answer (nothing stored, expired, or skipped).
    pub misses: u64,
    /// Operations that failed or were refused by an open circuit breaker.
    pub errors: u64,
}

/// The cache could not answer. Callers MUST treat this as a miss (read from the source of truth)
/// and never fail a request because of it.
#[derive(Debug, thiserror::Error)]
#[error("the cache is unavailable")]
pub struct CacheError(#[source] pub BoxError);

/// A shared cache of bytes.
///
/// Implementations MUST bound every operation in time (a slow cache is a missing cache), MUST make
/// `set_if_newer` and `bump_generation` atomic, MUST never return an entry past its time to
/// live, and MUST NOT evict generations while entries built with them may live (a Redis cache
/// needs a `volatile-*` or `noeviction` maxmemory policy: generations carry no ttl).
#[async_trait]
pub trait Cache: Send + Sync {
    /// The entry under `key`, if there is one and it has not expired.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time.
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError>;

    /// Stores `entry` under `key` for `ttl`, unless the key holds an entry whose version is the
    /// same or newer (so a reader that loaded an old value cannot overwrite a newer one that a
    /// writer stored, or the tombstone it left, while that entry is held: tombstone ttls must
    /// outlast a read). Returns whether it stored. A `ttl` is clamped to 1 ms ..= 365 days.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time; nothing is known to be stored.
    async fn set_if_newer(
        &self,
        key: &str,
        entry: &CacheEntry,
        ttl: Duration,
    ) -> Result<bool, CacheError>;

    /// Removes whatever is under `key`.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time.
    async fn delete(&self, key: &str) -> Result<(), CacheError>;

    /// The current generation of `namespace`: `0` until it is first bumped. Keys built with the
    /// generation (`markets:list:{generation}:...`) are retired together when it is bumped,
    /// without listing them.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time.
    async fn generation(&self, namespace: &str) -> Result<u64, CacheError>;

    /// Increments the generation of `namespace` and returns the new one.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time; the generation may or may not have
    /// moved.
    async fn bump_generation(&self, namespace: &str) -> Result<u64, CacheError>;

    /// Hit, miss and error counters for each tier, nearest first; empty when not counted.
    fn stats(&self) -> Vec<CacheTierStats> {
        Vec::new()
    }
}
