//! `RedisCache`: the cache port over Redis through a deadpool-redis pool, every operation bounded.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncConnectionConfig, Script};
use deadpool_redis::{Connection, Manager, Pool, Runtime};
use domain::ports::{BoxError, Cache, CacheEntry, CacheError, HealthProbe, ProbeError};

use crate::bounded_ttl;

/// Stores `ARGV` as the entry under `KEYS[1]` unless it holds a version at least as new.
///
/// `KEYS[1]`: the entry's key. `ARGV`: version, time to live in milliseconds, `1` when there are
/// bytes (`0` for a tombstone), the bytes. Returns 1 when it stored, 0 when it did not.
/// Versions are compared as decimal strings, exactly: Lua's numbers are doubles, which cannot
/// tell 2^63 - 1 from 2^63 - 2.
const SET_IF_NEWER: &str = r"
local function compare_digits(a, b)
  if #a ~= #b then
    if #a < #b then return -1 else return 1 end
  end
  if #a <= 15 then
    local x, y = tonumber(a), tonumber(b)
    if x < y then return -1 elseif x > y then return 1 else return 0 end
  end
  local split = #a - 9
  local order = compare_digits(string.sub(a, 1, split), string.sub(b, 1, split))
  if order ~= 0 then return order end
  return compare_digits(string.sub(a, split + 1), string.sub(b, split + 1))
end

local function compare(a, b)
  local a_negative = string.sub(a, 1, 1) == '-'
  local b_negative = string.sub(b, 1, 1) == '-'
  if a_negative ~= b_negative then
    if a_negative then return -1 else return 1 end
  end
  if a_negative then
    return -compare_digits(string.sub(a, 2), string.sub(b, 2))
  end
  return compare_digits(a, b)
end

local stored = redis.call('HGET', KEYS[1], 'v')
if stored and compare(stored, ARGV[1]) >= 0 then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'b', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCacheConfig {
    /// Put before every key (`{key_prefix}e:{key}` for entries, `{key_prefix}g:{namespace}` for
    /// generations, which therefore never meet), so that several applications or tests can share
    /// one Redis.
    pub key_prefix: String,
    /// Connections kept open at most.
    pub pool_size: usize,
    /// How long opening a connection (TCP and handshake) may take: for [`RedisCache::ping`] and
    /// the pool; a cache operation stops earlier, at `command_timeout`.
    pub connect_timeout: Duration,
    /// How long one cache operation may take in all, from asking for a connection to the reply.
    /// Past it the operation fails with [`CacheError`] (a slow cache is a missing cache).
    pub command_timeout: Duration,
    /// How long an operation may wait for a free connection when all `pool_size` are busy.
    pub wait_timeout: Duration,
}

impl Default for RedisCacheConfig {
    fn default() -> Self {
        Self {
            key_prefix: String::new(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(50),
            wait_timeout: Duration::from_millis(20),
        }
    }
}

/// The Redis cache cannot be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum RedisConfigError {
    #[error("the Redis URL is not valid")]
    Url(#[source] redis::RedisError),
    #[error("the Redis connection pool cannot be built")]
    Pool(#[source] deadpool_redis::BuildError),
    #[error("invalid Redis cache configuration: {0}")]
    Invalid(&'static str),
}

/// An operation did not finish in time.
#[derive(Debug, thiserror::Error)]
#[error("Redis did not answer within {0:?}")]
struct TimedOut(Duration);

/// Redis answered something this adapter did not write.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from Redis: {0}")]
struct UnexpectedReply(String);

/// The cache port over Redis, shared by every instance that uses the same Redis and key prefix.
///
/// An entry is a hash `{v: version, b: bytes}` (no `b` for a tombstone) with a time to live;
/// `set_if_newer` is one Lua script; a generation is a counter (`GET`, `INCR`) without time to
/// live. Every operation, waiting for a connection included, fails with [`CacheError`] after
/// `command_timeout`. Cloning gives another handle on the same pool.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool,
    key_prefix: Arc<str>,
    command_timeout: Duration,
    connect_timeout: Duration,
    set_if_newer: Arc<Script>,
}

impl RedisCache {
    /// A cache on the Redis at `url` (`redis://host:port/db`). Connections are opened when first
    /// needed, not here: this fails only on a malformed URL or configuration. Call
    /// [`RedisCache::ping`] to know whether Redis answers.
    ///
    /// Needs a Tokio runtime when operations run (the pool's timeouts use it).
    ///
    /// # Errors
    /// [`RedisConfigError`] when the URL cannot be parsed, `pool_size` is 0 or a timeout is zero.
    pub fn connect(url: &str, config: RedisCacheConfig) -> Result<Self, RedisConfigError> {
        if config.pool_size == 0 {
            return Err(RedisConfigError::Invalid("pool_size must be at least 1"));
        }
        if config.command_timeout.is_zero()
            || config.connect_timeout.is_zero()
            || config.wait_timeout.is_zero()
        {
            return Err(RedisConfigError::Invalid("timeouts must not be zero"));
        }
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout));
        let manager = Manager::new_with_config(url, connection).map_err(RedisConfigError::Url)?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.command_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(RedisConfigError::Pool)?;
        Ok(Self {
            pool,
            key_prefix: config.key_prefix.into(),
            command_timeout: config.command_timeout,
            connect_timeout: config.connect_timeout,
            set_if_newer: Arc::new(Script::new(SET_IF_NEWER)),
        })
    }

    /// The prefix put before every key.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Whether Redis answers `PING`, within `connect_timeout` (enough to open a connection).
    ///
    /// # Errors
    /// [`CacheError`] when it does not answer in time, or answers something else than `PONG`.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let budget = self.connect_timeout.max(self.command_timeout);
        within(budget, async {
            let mut connection = self.connection().await?;
            let reply: String = redis::cmd("PING").query_async(&mut connection).await?;
            if reply == "PONG" {
                Ok(())
            } else {
                Err(UnexpectedReply(format!("PING answered {reply:?}")).into())
            }
        })
        .await
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}e:{key}", self.key_prefix)
    }

    fn generation_key(&self, namespace: &str) -> String {
        format!("{}g:{namespace}", self.key_prefix)
    }

    async fn connection(&self) -> Result<Connection, BoxError> {
        Ok(self.pool.get().await?)
    }

    /// `work` bounded by `command_timeout`.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, BoxError>>,
    ) -> Result<T, CacheError> {
        within(self.command_timeout, work).await
    }
}

/// `work` bounded by `budget`; its failures and its lateness as [`CacheError`].
async fn within<T>(
    budget: Duration,
    work: impl Future<Output = Result<T, BoxError>>,
) -> Result<T, CacheError> {
    match tokio::time::timeout(budget, work).await {
        Ok(result) => result.map_err(CacheError),
        Err(_) => Err(CacheError(Box::new(TimedOut(budget)))),
    }
}

/// The entry in an `HMGET key v b` reply; `None` when there is none.
fn parse_entry(
    version: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
) -> Result<Option<CacheEntry>, BoxError> {
    let Some(version) = version else {
        return Ok(None);
    };
    let version = std::str::from_utf8(&version)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| UnexpectedReply(format!("version {version:?}")))?;
    Ok(Some(CacheEntry { version, value }))
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        let key = self.entry_key(key);
        self.bounded(async {
            let mut connection = self.connection().await?;
            let (version, value): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("HMGET")
                .arg(&key)
                .arg("v")
                .arg("b")
                .query_async(&mut connection)
                .await?;
            parse_entry(version, value)
        })
        .await
    }

    async fn set_if_newer(
        &self,
        key: &str,
        entry: &CacheEntry,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let key = self.entry_key(key);
        // Within `MAX_TTL`, the milliseconds fit in a u64.
        let ttl_ms = u64::try_from(bounded_ttl(ttl).as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.set_if_newer.key(&key);
        invocation
            .arg(entry.version)
            .arg(ttl_ms)
            .arg(if entry.value.is_some() { "1" } else { "0" })
            .arg(entry.value.as_deref().unwrap_or_default());
        self.bounded(async {
            let mut connection = self.connection().await?;
            let stored: i64 = invocation.invoke_async(&mut connection).await?;
            Ok(stored == 1)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let key = self.entry_key(key);
        self.bounded(async {
            let mut connection = self.connection().await?;
            let _: i64 = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut connection)
                .await?;
            Ok(())
        })
        .await
    }

    async fn generation(&self, namespace: &str) -> Result<u64, CacheError> {
        let key = self.generation_key(namespace);
        self.bounded(async {
            let mut connection = self.connection().await?;
            let generation: Option<u64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut connection)
                .await?;
            Ok(generation.unwrap_or(0))
        })
        .await
    }

    async fn bump_generation(&self, namespace: &str) -> Result<u64, CacheError> {
        let key = self.generation_key(namespace);
        self.bounded(async {
            let mut connection = self.connection().await?;
            let generation: i64 = redis::cmd("INCR")
                .arg(&key)
                .query_async(&mut connection)
                .await?;
            u64::try_from(generation)
                .map_err(|_| UnexpectedReply(format!("generation {generation}")).into())
        })
        .await
    }
}

/// Readiness of the Redis cache, named `"cache"`: [`RedisCache::ping`].
#[derive(Debug, Clone)]
pub struct RedisProbe {
    cache: RedisCache,
}

impl RedisProbe {
    #[must_use]
    pub fn new(cache: RedisCache) -> Self {
        Self { cache }
    }
}

#[async_trait]
impl HealthProbe for RedisProbe {
    fn name(&self) -> &'static str {
        "cache"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        self.cache.ping().await.map_err(|error| ProbeError {
            name: self.name(),
            cause: Box::new(error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(prefix: &str) -> RedisCache {
        RedisCache::connect(
            "redis://127.0.0.1:1",
            RedisCacheConfig {
                key_prefix: prefix.to_owned(),
                ..RedisCacheConfig::default()
            },
        )
        .expect("a valid configuration")
    }

    #[test]
    fn keys_and_generations_carry_the_prefix() {
        let cache = cache("app:");
        assert_eq!(cache.entry_key("markets:1"), "app:e:markets:1");
        assert_eq!(cache.generation_key("markets"), "app:g:markets");
        assert_eq!(cache.key_prefix(), "app:");
        let bare = self::cache("");
        assert_eq!(bare.entry_key("g:n"), "e:g:n");
        assert_eq!(bare.generation_key("n"), "g:n");
    }

    #[test]
    fn a_malformed_url_or_configuration_is_refused() {
        assert!(matches!(
            RedisCache::connect("not a url", RedisCacheConfig::default()),
            Err(RedisConfigError::Url(_))
        ));
        assert!(matches!(
            RedisCache::connect(
                "redis://127.0.0.1",
                RedisCacheConfig {
                    pool_size: 0,
                    ..RedisCacheConfig::default()
                }
            ),
            Err(RedisConfigError::Invalid(_))
        ));
        assert!(matches!(
            RedisCache::connect(
                "redis://127.0.0.1",
                RedisCacheConfig {
                    command_timeout: Duration::ZERO,
                    ..RedisCacheConfig::default()
                }
            ),
            Err(RedisConfigError::Invalid(_))
        ));
    }

    #[test]
    fn an_hmget_reply_becomes_an_entry() {
        assert_eq!(parse_entry(None, None).expect("a miss"), None);
        assert_eq!(
            parse_entry(Some(b"42".to_vec()), Some(b"xy".to_vec())).expect("an entry"),
            Some(CacheEntry {
                version: 42,
                value: Some(b"xy".to_vec())
            })
        );
        assert_eq!(
            parse_entry(Some(b"-3".to_vec()), None).expect("a tombstone"),
            Some(CacheEntry {
                version: -3,
                value: None
            })
        );
        assert!(parse_entry(Some(b"x".to_vec()), None).is_err());
    }
}
