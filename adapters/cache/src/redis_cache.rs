//! `RedisCache`: the cache port over Redis through a deadpool-redis pool, every operation bounded.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncConnectionConfig, Script};
use deadpool_redis::{Connection, Manager, Pool, Runtime};
use domain::ports::{
    BoxError, Cache, CacheEntry, CacheError, CacheTierStats, HealthProbe, ProbeError,
};

use crate::counters::TierCounters;
use crate::{MAX_TTL, bounded_ttl};

/// Compares two versions given as decimal strings, exactly: Lua's numbers are doubles, which
/// cannot tell 2^63 - 1 from 2^63 - 2. Shared by the scripts that compare versions.
const COMPARE_VERSIONS: &str = r"
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
";

/// The entry under `KEYS[2]` if it was written in the current epoch (`KEYS[1]`, 0 when missing).
///
/// Returns nil, or `{version, milliseconds left to live, '1' | '0' (bytes or tombstone), bytes}`.
const GET: &str = r"
local epoch = redis.call('GET', KEYS[1]) or '0'
local entry = redis.call('HMGET', KEYS[2], 'v', 'e', 'b')
if not entry[1] or (entry[2] or '0') ~= epoch then
  return false
end
local ttl = redis.call('PTTL', KEYS[2])
if entry[3] then
  return {entry[1], ttl, '1', entry[3]}
end
return {entry[1], ttl, '0', ''}
";

/// Stores `ARGV` as the entry under `KEYS[1]` unless it holds a version at least as new written in
/// the current epoch (`KEYS[2]`); an entry of another epoch counts as absent. Publishes
/// `{origin} e {version} {key}` when it stored.
///
/// `ARGV`: version, time to live in milliseconds, `1` when there are bytes (`0` for a tombstone),
/// the bytes, the channel, the origin, the key as the caller named it. Returns 1 when it stored, 0
/// when it did not.
const SET_IF_NEWER: &str = r"
local epoch = redis.call('GET', KEYS[2]) or '0'
local stored = redis.call('HMGET', KEYS[1], 'v', 'e')
if stored[1] and (stored[2] or '0') == epoch and compare(stored[1], ARGV[1]) >= 0 then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', epoch, 'b', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', epoch)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' e ' .. ARGV[1] .. ' ' .. ARGV[7])
return 1
";

/// Deletes `KEYS[1]` and publishes `{origin} d {key}`. `ARGV`: the channel, the origin, the key.
const DELETE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' d ' .. ARGV[3])
return 1
";

/// Increments the counter `KEYS[1]`, publishes `{origin} {kind} {new value}[ {name}]` and returns
/// the new value. `ARGV`: the channel, the origin, the kind (`g` or `flush`), the name (none for
/// `flush`).
const BUMP: &str = r"
local value = redis.call('INCR', KEYS[1])
local message = ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. string.format('%d', value)
if ARGV[4] then
  message = message .. ' ' .. ARGV[4]
end
redis.call('PUBLISH', ARGV[1], message)
return value
";

/// The Lua scripts of [`RedisCache`], loaded once per Redis (`EVALSHA`, then `EVAL` on `NOSCRIPT`).
struct Scripts {
    get: Script,
    set_if_newer: Script,
    delete: Script,
    bump: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            get: Script::new(GET),
            set_if_newer: Script::new(&format!("{COMPARE_VERSIONS}{SET_IF_NEWER}")),
            delete: Script::new(DELETE),
            bump: Script::new(BUMP),
        }
    }
}

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
/// An entry is a hash `{v: version, e: epoch, b: bytes}` (no `b` for a tombstone) with a time to
/// live. The cache epoch is a counter at `{key_prefix}epoch` (0 while missing): an entry written
/// in another epoch is never returned and counts as absent, so [`RedisCache::bump_epoch`] voids
/// every entry at once. A generation is a counter without time to live. `get`, `set_if_newer`,
/// `delete`, `bump_generation` and `bump_epoch` are Lua scripts; the last four publish what they
/// changed on `{key_prefix}invalidations` (see [`RedisCache::invalidation_channel`] and the
/// message format in this crate's documentation), tagged with this handle's
/// [`RedisCache::origin`]. Every operation, waiting for a connection included, fails with
/// [`CacheError`] after `command_timeout`. Reads and failures are counted (tier `"redis"`, see
/// [`Cache::stats`]). Cloning gives another handle on the same pool, origin and counters.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool,
    key_prefix: Arc<str>,
    epoch_key: Arc<str>,
    channel: Arc<str>,
    origin: Arc<str>,
    command_timeout: Duration,
    connect_timeout: Duration,
    scripts: Arc<Scripts>,
    counters: TierCounters,
}

/// A new origin: 16 random hexadecimal digits.
fn random_origin() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl RedisCache {
    /// A cache on the Redis at `url` (`redis://host:port/db`), with a random origin. Connections
    /// are opened when first needed, not here: this fails only on a malformed URL or
    /// configuration. Call [`RedisCache::ping`] to know whether Redis answers.
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
        let prefix = config.key_prefix;
        Ok(Self {
            pool,
            epoch_key: format!("{prefix}epoch").into(),
            channel: format!("{prefix}invalidations").into(),
            key_prefix: prefix.into(),
            origin: random_origin().into(),
            command_timeout: config.command_timeout,
            connect_timeout: config.connect_timeout,
            scripts: Arc::new(Scripts::new()),
            counters: TierCounters::default(),
        })
    }

    /// This handle with `origin` as the origin of the messages it publishes, instead of a random
    /// one.
    ///
    /// # Errors
    /// [`RedisConfigError::Invalid`] when `origin` is empty or holds whitespace.
    pub fn with_origin(mut self, origin: &str) -> Result<Self, RedisConfigError> {
        if origin.is_empty() || origin.chars().any(char::is_whitespace) {
            return Err(RedisConfigError::Invalid(
                "an origin must be a non-empty word without whitespace",
            ));
        }
        self.origin = origin.into();
        Ok(self)
    }

    /// The prefix put before every key.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Who this handle (and its clones) is in the messages it publishes.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The channel the changes are published on: `{key_prefix}invalidations`.
    #[must_use]
    pub fn invalidation_channel(&self) -> &str {
        &self.channel
    }

    /// How long opening a connection may take (`connect_timeout`).
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long one operation may take in all (`command_timeout`).
    #[must_use]
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Whether Redis answers `PING`, within `connect_timeout` (enough to open a connection).
    ///
    /// # Errors
    /// [`CacheError`] when it does not answer in time, or answers something else than `PONG`.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.ping_within(self.connect_timeout.max(self.command_timeout))
            .await
    }

    /// Whether Redis answers `PING` within `budget`.
    pub(crate) async fn ping_within(&self, budget: Duration) -> Result<(), CacheError> {
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

    /// Starts a new cache epoch and returns it: every entry written before is void from now on
    /// (never returned, and no longer blocking older versions). Publishes `{origin} flush
    /// {epoch}`, so that every tiered cache forgets what it holds in memory. Generations are not
    /// touched.
    ///
    /// # Errors
    /// [`CacheError`] when Redis does not answer in time; the epoch may or may not have moved.
    pub async fn bump_epoch(&self) -> Result<u64, CacheError> {
        let mut invocation = self.scripts.bump.key(&*self.epoch_key);
        invocation
            .arg(&*self.channel)
            .arg(&*self.origin)
            .arg("flush");
        let result = self
            .bounded(async {
                let mut connection = self.connection().await?;
                let epoch: i64 = invocation.invoke_async(&mut connection).await?;
                u64::try_from(epoch).map_err(|_| UnexpectedReply(format!("epoch {epoch}")).into())
            })
            .await;
        self.counted(result)
    }

    /// The counters of this tier (`"redis"`).
    pub(crate) fn tier_stats(&self) -> CacheTierStats {
        self.counters.snapshot("redis")
    }

    /// The entry under `key` in the current epoch, with how long it has left to live.
    pub(crate) async fn get_with_ttl(
        &self,
        key: &str,
    ) -> Result<Option<(CacheEntry, Duration)>, CacheError> {
        let entry_key = self.entry_key(key);
        let mut invocation = self.scripts.get.key(&*self.epoch_key);
        invocation.key(&entry_key);
        let result = self
            .bounded(async {
                let mut connection = self.connection().await?;
                let reply: GetReply = invocation.invoke_async(&mut connection).await?;
                parse_entry(reply)
            })
            .await;
        let result = self.counted(result);
        if let Ok(found) = &result {
            self.counters.read(found.as_ref());
        }
        result
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

    /// `result`, its failure counted.
    fn counted<T>(&self, result: Result<T, CacheError>) -> Result<T, CacheError> {
        if result.is_err() {
            self.counters.error();
        }
        result
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

/// A reply of the [`GET`] script: nothing, or the version, the milliseconds left to live, the
/// bytes flag and the bytes.
type GetReply = Option<(Vec<u8>, i64, Vec<u8>, Vec<u8>)>;

/// The entry and its time left in a reply of the [`GET`] script; `None` when there is none.
fn parse_entry(reply: GetReply) -> Result<Option<(CacheEntry, Duration)>, BoxError> {
    let Some((version, ttl_ms, has_bytes, bytes)) = reply else {
        return Ok(None);
    };
    let version = std::str::from_utf8(&version)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| UnexpectedReply(format!("version {version:?}")))?;
    let value = match has_bytes.as_slice() {
        b"1" => Some(bytes),
        b"0" => None,
        other => return Err(UnexpectedReply(format!("bytes flag {other:?}")).into()),
    };
    // -1: no time to live (not written by this adapter); -2 cannot happen within the script.
    let ttl = u64::try_from(ttl_ms).map_or(MAX_TTL, Duration::from_millis);
    Ok(Some((CacheEntry { version, value }, bounded_ttl(ttl))))
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("key_prefix", &self.key_prefix)
            .field("origin", &self.origin)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        Ok(self.get_with_ttl(key).await?.map(|(entry, _)| entry))
    }

    async fn set_if_newer(
        &self,
        key: &str,
        entry: &CacheEntry,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let entry_key = self.entry_key(key);
        // Within `MAX_TTL`, the milliseconds fit in a u64.
        let ttl_ms = u64::try_from(bounded_ttl(ttl).as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.scripts.set_if_newer.key(&entry_key);
        invocation
            .key(&*self.epoch_key)
            .arg(entry.version)
            .arg(ttl_ms)
            .arg(if entry.value.is_some() { "1" } else { "0" })
            .arg(entry.value.as_deref().unwrap_or_default())
            .arg(&*self.channel)
            .arg(&*self.origin)
            .arg(key);
        let result = self
            .bounded(async {
                let mut connection = self.connection().await?;
                let stored: i64 = invocation.invoke_async(&mut connection).await?;
                Ok(stored == 1)
            })
            .await;
        self.counted(result)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let entry_key = self.entry_key(key);
        let mut invocation = self.scripts.delete.key(&entry_key);
        invocation.arg(&*self.channel).arg(&*self.origin).arg(key);
        let result = self
            .bounded(async {
                let mut connection = self.connection().await?;
                let _: i64 = invocation.invoke_async(&mut connection).await?;
                Ok(())
            })
            .await;
        self.counted(result)
    }

    async fn generation(&self, namespace: &str) -> Result<u64, CacheError> {
        let key = self.generation_key(namespace);
        let result = self
            .bounded(async {
                let mut connection = self.connection().await?;
                let generation: Option<u64> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await?;
                Ok(generation.unwrap_or(0))
            })
            .await;
        self.counted(result)
    }

    async fn bump_generation(&self, namespace: &str) -> Result<u64, CacheError> {
        let key = self.generation_key(namespace);
        let mut invocation = self.scripts.bump.key(&key);
        invocation
            .arg(&*self.channel)
            .arg(&*self.origin)
            .arg("g")
            .arg(namespace);
        let result = self
            .bounded(async {
                let mut connection = self.connection().await?;
                let generation: i64 = invocation.invoke_async(&mut connection).await?;
                u64::try_from(generation)
                    .map_err(|_| UnexpectedReply(format!("generation {generation}")).into())
            })
            .await;
        self.counted(result)
    }

    fn stats(&self) -> Vec<CacheTierStats> {
        vec![self.tier_stats()]
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

    /// Reads fall back to the database while Redis is away.
    fn required(&self) -> bool {
        false
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
    use crate::MIN_TTL;

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
    fn the_epoch_and_the_channel_carry_the_prefix() {
        let cache = cache("app:");
        assert_eq!(&*cache.epoch_key, "app:epoch");
        assert_eq!(cache.invalidation_channel(), "app:invalidations");
        assert_eq!(cache.origin().len(), 16);
        assert_eq!(cache.clone().origin(), cache.origin());
        assert_ne!(self::cache("app:").origin(), cache.origin());
    }

    #[test]
    fn an_origin_is_one_word() {
        let named = cache("").with_origin("instance-1").expect("a valid origin");
        assert_eq!(named.origin(), "instance-1");
        assert!(cache("").with_origin("").is_err());
        assert!(cache("").with_origin("two words").is_err());
    }

    #[test]
    fn a_get_reply_becomes_an_entry_and_its_time_left() {
        let reply = |version: &[u8], ttl: i64, flag: &[u8], bytes: &[u8]| {
            Some((version.to_vec(), ttl, flag.to_vec(), bytes.to_vec()))
        };
        assert_eq!(parse_entry(None).expect("a miss"), None);
        assert_eq!(
            parse_entry(reply(b"42", 1500, b"1", b"xy")).expect("an entry"),
            Some((
                CacheEntry {
                    version: 42,
                    value: Some(b"xy".to_vec())
                },
                Duration::from_millis(1500)
            ))
        );
        assert_eq!(
            parse_entry(reply(b"-3", 0, b"0", b"")).expect("a tombstone"),
            Some((
                CacheEntry {
                    version: -3,
                    value: None
                },
                MIN_TTL
            ))
        );
        assert_eq!(
            parse_entry(reply(b"1", -1, b"1", b"")).expect("an entry without ttl"),
            Some((
                CacheEntry {
                    version: 1,
                    value: Some(Vec::new())
                },
                MAX_TTL
            ))
        );
        assert!(parse_entry(reply(b"x", 1, b"1", b"")).is_err());
        assert!(parse_entry(reply(b"1", 1, b"2", b"")).is_err());
    }
}
