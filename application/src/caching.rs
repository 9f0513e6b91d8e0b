//! Cached market reads: cache-aside over any `MarketRepository`, storing rendered response bodies
//! under versioned entries, written through after every commit (ADR 0010).
//!
//! - One market lives under `markets:{id}` with the market's `version`: a reader that loaded an
//!   old version can never overwrite the newer one a writer stored ([`Cache::set_if_newer`]).
//!   "Not found" is cached briefly as a tombstone of version 0; a deleted market leaves a
//!   tombstone one version above its last.
//! - List pages live under `markets:list:{generation}:{query}`; every committed market write
//!   bumps the generation, which retires every page at once without listing keys.
//! - Concurrent misses on one key share one load (single-flight), which looks at the cache again
//!   first: a flight that ended just before it started has filled the key.
//! - The cache is an optimisation only: when it fails, reads go to the database and writes log.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::listing::MarketListQuery;
use domain::ports::{Cache, CacheEntry, CacheTierStats, MarketRepository, RepositoryError};
use domain::{DomainEvent, Market, MarketId};
use singleflight_async::SingleFlight;

use crate::markets::MarketList;

/// The namespace whose generation every cached list page is built with.
const LIST_NAMESPACE: &str = "markets:list";

/// Turns markets into the bytes a client receives, so that a cache hit sends them as they are.
/// Implemented by the delivery adapter (the HTTP API renders its JSON envelope).
pub trait MarketRenderer: Send + Sync {
    /// The response body for one market.
    fn market(&self, market: &Market) -> Vec<u8>;

    /// The response body for a page of markets; `include_creators` when the creators were asked
    /// for (and loaded into `list.creators`).
    fn list(&self, list: &MarketList, include_creators: bool) -> Vec<u8>;
}

/// How long cached reads live.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePolicy {
    /// One market (written through on every change, so this only bounds memory and outages).
    pub market_ttl: Duration,
    /// A list page (retired by every market write before this runs out).
    pub list_ttl: Duration,
    /// "No such market".
    pub not_found_ttl: Duration,
    /// Every time to live is shortened by a random fraction of up to this (`0.0..=0.5`), so that
    /// entries written together do not expire together.
    pub jitter: f64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            market_ttl: Duration::from_secs(300),
            list_ttl: Duration::from_secs(30),
            not_found_ttl: Duration::from_secs(5),
            jitter: 0.1,
        }
    }
}

impl CachePolicy {
    /// `ttl` shortened by a random part of up to [`CachePolicy::jitter`].
    fn jittered(&self, ttl: Duration) -> Duration {
        let jitter = self.jitter.clamp(0.0, 0.5);
        if jitter == 0.0 {
            return ttl;
        }
        ttl.mul_f64(1.0 - rand::random_range(0.0..jitter))
    }
}

/// A response body ready to send, and the version of the market it shows (`0` for a page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub version: i64,
    pub body: Vec<u8>,
}

/// Loads in flight, by cache key: each outcome is cloned to every caller that waited for it.
type Flights<T> = Arc<SingleFlight<String, Result<T, Arc<RepositoryError>>>>;

/// Market reads through a cache: the `CachedMarketRepository` of the patterns catalogue, holding
/// rendered bodies rather than entities so that a hit does no serialization at all.
///
/// Without a cache (`caching off`) every read loads and renders. Cheap to clone.
#[derive(Clone)]
pub struct CachedMarketRepository {
    markets: Arc<dyn MarketRepository>,
    cache: Option<Arc<dyn Cache>>,
    renderer: Arc<dyn MarketRenderer>,
    policy: CachePolicy,
    market_flights: Flights<Option<Rendered>>,
    page_flights: Flights<Rendered>,
}

impl CachedMarketRepository {
    /// Reads of `markets` (the source of truth: the primary) through `cache`, rendered by
    /// `renderer`.
    #[must_use]
    pub fn new(
        markets: Arc<dyn MarketRepository>,
        cache: Arc<dyn Cache>,
        renderer: Arc<dyn MarketRenderer>,
        policy: CachePolicy,
    ) -> Self {
        Self {
            markets,
            cache: Some(cache),
            renderer,
            policy,
            market_flights: Arc::new(SingleFlight::new()),
            page_flights: Arc::new(SingleFlight::new()),
        }
    }

    /// Reads of `markets` with caching off: every read loads and renders.
    #[must_use]
    pub fn uncached(markets: Arc<dyn MarketRepository>, renderer: Arc<dyn MarketRenderer>) -> Self {
        Self {
            markets,
            cache: None,
            renderer,
            policy: CachePolicy::default(),
            market_flights: Arc::new(SingleFlight::new()),
            page_flights: Arc::new(SingleFlight::new()),
        }
    }

    /// The cache's hit, miss and error counters per tier; empty with caching off.
    #[must_use]
    pub fn stats(&self) -> Vec<CacheTierStats> {
        self.cache
            .as_ref()
            .map(|cache| cache.stats())
            .unwrap_or_default()
    }

    /// The rendered market, from the cache when it holds it, else loaded (once for every
    /// concurrent caller), rendered and stored.
    ///
    /// # Errors
    /// The repository's error when the market had to be loaded and could not be.
    pub async fn find_by_id(&self, id: MarketId) -> Result<Option<Rendered>, RepositoryError> {
        let Some(cache) = &self.cache else {
            let market = self.markets.find_by_id(id).await?;
            return Ok(market.map(|market| self.render(&market)));
        };
        let key = market_key(id);
        if let Some(known) = lookup_market(cache.as_ref(), &key).await {
            return Ok(known);
        }
        let load = || async {
            // A flight that ended between this caller's miss and its own start filled the key.
            if let Some(known) = lookup_market(cache.as_ref(), &key).await {
                return Ok(known);
            }
            let market = self.markets.find_by_id(id).await.map_err(Arc::new)?;
            let Some(market) = market else {
                let tombstone = CacheEntry {
                    version: 0,
                    value: None,
                };
                self.store(cache.as_ref(), &key, &tombstone, self.policy.not_found_ttl)
                    .await;
                return Ok(None);
            };
            let rendered = self.render(&market);
            let entry = CacheEntry {
                version: rendered.version,
                value: Some(rendered.body.clone()),
            };
            self.store(cache.as_ref(), &key, &entry, self.policy.market_ttl)
                .await;
            Ok(Some(rendered))
        };
        self.market_flights
            .work(key.clone(), load)
            .await
            .map_err(shared_failure)
    }

    /// The rendered page for `query`, from the cache when it holds one built since the last
    /// market write, else built by `load` (once for every concurrent caller) and stored.
    ///
    /// `load` must read the source of truth (the primary): a page built from a lagging replica
    /// would be shared under the current generation. `uncached_load` serves when the cache is
    /// off or does not answer, and may read a replica.
    ///
    /// # Errors
    /// `load`'s or `uncached_load`'s error.
    pub async fn list<L, U>(
        &self,
        query: &MarketListQuery,
        include_creators: bool,
        load: impl FnOnce() -> L,
        uncached_load: impl FnOnce() -> U,
    ) -> Result<Rendered, RepositoryError>
    where
        L: Future<Output = Result<MarketList, RepositoryError>>,
        U: Future<Output = Result<MarketList, RepositoryError>>,
    {
        let render = |list: &MarketList| Rendered {
            version: 0,
            body: self.renderer.list(list, include_creators),
        };
        let Some(cache) = &self.cache else {
            return uncached_load().await.map(|list| render(&list));
        };
        let generation = match cache.generation(LIST_NAMESPACE).await {
            Ok(generation) => generation,
            Err(error) => {
                tracing::debug!(error = %error, "cache generation unavailable; loading");
                return uncached_load().await.map(|list| render(&list));
            }
        };
        let key = format!("{LIST_NAMESPACE}:{generation}:{include_creators}:{query:?}");
        if let Some(page) = lookup_page(cache.as_ref(), &key).await {
            return Ok(page);
        }
        let fill = || async {
            if let Some(page) = lookup_page(cache.as_ref(), &key).await {
                return Ok(page);
            }
            let rendered = render(&load().await.map_err(Arc::new)?);
            let entry = CacheEntry {
                version: 0,
                value: Some(rendered.body.clone()),
            };
            self.store(cache.as_ref(), &key, &entry, self.policy.list_ttl)
                .await;
            Ok(rendered)
        };
        self.page_flights
            .work(key.clone(), fill)
            .await
            .map_err(shared_failure)
    }

    /// After a commit that changed `market`: stores its new rendering (write-through) and retires
    /// every list page. Never fails: a cache that does not answer is logged and left to its own
    /// recovery (the tiered cache retires what it may have missed when it comes back).
    pub async fn market_changed(&self, market: &Market) {
        let Some(cache) = &self.cache else {
            return;
        };
        let rendered = self.render(market);
        let key = market_key(market.id);
        let entry = CacheEntry {
            version: rendered.version,
            value: Some(rendered.body),
        };
        if let Err(error) = cache
            .set_if_newer(&key, &entry, self.policy.jittered(self.policy.market_ttl))
            .await
        {
            tracing::warn!(error = %error, market_id = %market.id, "cache write-through failed");
            if let Err(error) = cache.delete(&key).await {
                tracing::warn!(error = %error, market_id = %market.id, "cache delete failed");
            }
        }
        self.retire_lists(cache.as_ref()).await;
    }

    /// After a commit that deleted the market `id` at `last_version`: leaves a tombstone a version
    /// above (so that a reader that loaded it before cannot bring it back) and retires every list
    /// page.
    pub async fn market_deleted(&self, id: MarketId, last_version: i64) {
        let Some(cache) = &self.cache else {
            return;
        };
        let key = market_key(id);
        let tombstone = CacheEntry {
            version: last_version.saturating_add(1),
            value: None,
        };
        // As long as a market may be cached: a reader that loaded it cannot outlast that.
        if let Err(error) = cache
            .set_if_newer(&key, &tombstone, self.policy.market_ttl)
            .await
        {
            tracing::warn!(error = %error, market_id = %id, "cache tombstone failed");
            if let Err(error) = cache.delete(&key).await {
                tracing::warn!(error = %error, market_id = %id, "cache delete failed");
            }
        }
        self.retire_lists(cache.as_ref()).await;
    }

    /// Repairs the cache from a committed event: when it holds an older version of the market
    /// than the event says (a write-through lost in a cache outage), the market is reloaded from
    /// the source of truth and written through, and the list pages are retired. An event the
    /// cache already reflects changes nothing, so events may be seen twice.
    pub async fn reconcile(&self, event: &DomainEvent) {
        let Some(cache) = &self.cache else {
            return;
        };
        let (id, version) = match event {
            DomainEvent::MarketCreated { market_id, .. } => (*market_id, 1),
            DomainEvent::MarketUpdated { market_id, version }
            | DomainEvent::MarketStatusChanged {
                market_id, version, ..
            }
            | DomainEvent::PositionOpened {
                market_id, version, ..
            } => (*market_id, *version),
            DomainEvent::MarketDeleted { market_id } => (*market_id, i64::MAX),
            DomainEvent::UserRegistered { .. } => return,
        };
        let Ok(Some(held)) = cache.get(&market_key(id)).await else {
            // Nothing cached (a read will load it) or a cache that does not answer.
            return;
        };
        let deleted = matches!(event, DomainEvent::MarketDeleted { .. });
        let stale = if deleted {
            held.value.is_some()
        } else {
            held.version < version
        };
        if !stale {
            return;
        }
        tracing::info!(market_id = %id, cached = held.version, version, "repairing a stale cache entry");
        match self.markets.find_by_id(id).await {
            Ok(Some(market)) if !deleted => self.market_changed(&market).await,
            Ok(_) => self.market_deleted(id, held.version).await,
            Err(error) => {
                tracing::warn!(error = %error, market_id = %id, "cache repair could not load the market")
            }
        }
    }

    async fn retire_lists(&self, cache: &dyn Cache) {
        if let Err(error) = cache.bump_generation(LIST_NAMESPACE).await {
            tracing::warn!(error = %error, "cache list generation bump failed");
        }
    }

    fn render(&self, market: &Market) -> Rendered {
        Rendered {
            version: market.version,
            body: self.renderer.market(market),
        }
    }

    /// Stores `entry` for a jittered `ttl`; a failure is only logged (the read is served anyway).
    async fn store(&self, cache: &dyn Cache, key: &str, entry: &CacheEntry, ttl: Duration) {
        if let Err(error) = cache
            .set_if_newer(key, entry, self.policy.jittered(ttl))
            .await
        {
            tracing::debug!(error = %error, key, "cache fill failed");
        }
    }
}

/// What the cache knows of a market: `Some(Some(_))` its body, `Some(None)` that it does not exist,
/// `None` nothing (a miss, or a cache that did not answer).
async fn lookup_market(cache: &dyn Cache, key: &str) -> Option<Option<Rendered>> {
    match cache.get(key).await {
        Ok(Some(CacheEntry {
            version,
            value: Some(body),
        })) => Some(Some(Rendered { version, body })),
        Ok(Some(CacheEntry { value: None, .. })) => Some(None),
        Ok(None) => None,
        Err(error) => {
            tracing::debug!(error = %error, "cache read failed; loading");
            None
        }
    }
}

/// The cached page under `key`, if the cache holds one.
async fn lookup_page(cache: &dyn Cache, key: &str) -> Option<Rendered> {
    match cache.get(key).await {
        Ok(Some(CacheEntry {
            value: Some(body), ..
        })) => Some(Rendered { version: 0, body }),
        Ok(_) => None,
        Err(error) => {
            tracing::debug!(error = %error, "cache read failed; loading");
            None
        }
    }
}

/// A load's failure, shared by every caller that waited for it.
fn shared_failure(error: Arc<RepositoryError>) -> RepositoryError {
    RepositoryError::Unavailable(Box::new(error))
}

fn market_key(id: MarketId) -> String {
    format!("markets:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_only_ever_shortens_a_ttl_and_by_at_most_its_fraction() {
        let policy = CachePolicy {
            jitter: 0.2,
            ..CachePolicy::default()
        };
        let ttl = Duration::from_secs(100);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let jittered = policy.jittered(ttl);
            assert!(jittered <= ttl && jittered > Duration::from_secs(80));
            seen.insert(jittered.as_millis());
        }
        assert!(seen.len() > 10, "the jitter varies");
        let none = CachePolicy {
            jitter: 0.0,
            ..CachePolicy::default()
        };
        assert_eq!(none.jittered(ttl), ttl);
        let excessive = CachePolicy {
            jitter: 3.0,
            ..CachePolicy::default()
        };
        assert!(excessive.jittered(ttl) > Duration::from_secs(50));
    }
}
