//! `RedisRateLimiter`: GCRA in one Lua script on Redis's clock, so that every instance sharing the Redis shares the limits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{AsyncConnectionConfig, Script};
use deadpool_redis::{Manager, Pool, Runtime};
use domain::ports::{Quota, RateDecision, RateLimitError, RateLimiter};

use crate::gcra::Gcra;

/// GCRA on `KEYS[1]`, which holds the key's theoretical arrival time (TAT) in microseconds of
/// Redis's own clock (`TIME`: every instance agrees, whatever their clocks say).
///
/// `ARGV`: the emission interval and the tolerance (interval x limit), in µs. Counts the request
/// only if it fits, the key then living until its TAT (when it is rested again). Returns `{1, µs
/// until rested, 0}` when allowed, `{0, µs until rested, µs until one request fits}` when not.
/// Times are below 2^53 µs (year 2255), exact in Lua's doubles; `%d` keeps them out of exponent
/// notation.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local wait = tat + interval - now
if wait > tolerance then
  return {0, tat - now, wait - tolerance}
end
redis.call('SET', KEYS[1], string.format('%d', tat + interval), 'PX', math.ceil(wait / 1000))
return {1, wait, 0}
";

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisRateLimiterConfig {
    /// Put before every key: a key `k` is stored at `{key_prefix}ratelimit:{k}`.
    pub key_prefix: String,
    /// Connections kept open at most.
    pub pool_size: usize,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// How long one check may take in all, from asking for a connection to the reply; past it the
    /// check fails (and a [`crate::FallbackRateLimiter`] decides in process).
    pub command_timeout: Duration,
}

impl Default for RedisRateLimiterConfig {
    fn default() -> Self {
        Self {
            key_prefix: String::new(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(100),
        }
    }
}

/// The Redis limiter cannot be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum RedisRateLimiterError {
    #[error("the Redis URL is not valid")]
    Url(#[source] deadpool_redis::redis::RedisError),
    #[error("the Redis connection pool cannot be built")]
    Pool(#[source] deadpool_redis::BuildError),
    #[error("invalid Redis rate limiter configuration: {0}")]
    Invalid(&'static str),
}

/// The rate-limiter port over Redis: one `EVALSHA` per check, atomic, on Redis's clock, shared by
/// every instance with the same Redis and key prefix. Every check is bounded by
/// `command_timeout`; a failure or a timeout is [`RateLimitError::Unavailable`] and counts nothing.
/// Cloning gives another handle on the same pool.
#[derive(Clone)]
pub struct RedisRateLimiter {
    pool: Pool,
    key_prefix: Arc<str>,
    command_timeout: Duration,
    script: Arc<Script>,
}

impl RedisRateLimiter {
    /// A limiter on the Redis at `url`. Connections are opened when first needed: this fails only
    /// on a malformed URL or configuration.
    ///
    /// # Errors
    /// [`RedisRateLimiterError`] when the URL cannot be parsed, `pool_size` is 0 or a timeout is
    /// zero.
    pub fn connect(
        url: &str,
        config: RedisRateLimiterConfig,
    ) -> Result<Self, RedisRateLimiterError> {
        if config.pool_size == 0 {
            return Err(RedisRateLimiterError::Invalid(
                "pool_size must be at least 1",
            ));
        }
        if config.command_timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(RedisRateLimiterError::Invalid("timeouts must not be zero"));
        }
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout));
        let manager =
            Manager::new_with_config(url, connection).map_err(RedisRateLimiterError::Url)?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.command_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.command_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(RedisRateLimiterError::Pool)?;
        Ok(Self {
            pool,
            key_prefix: config.key_prefix.into(),
            command_timeout: config.command_timeout,
            script: Arc::new(Script::new(GCRA)),
        })
    }

    /// The prefix put before every key.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    async fn run(&self, key: &str, gcra: Gcra) -> Result<(i64, i64, i64), String> {
        let mut connection = self.pool.get().await.map_err(|error| error.to_string())?;
        let mut invocation = self
            .script
            .key(format!("{}ratelimit:{key}", self.key_prefix));
        invocation.arg(gcra.interval).arg(gcra.tolerance);
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| error.to_string())
    }
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, RateLimitError> {
        let gcra = Gcra::of(quota);
        let (allowed, reset, retry) =
            match tokio::time::timeout(self.command_timeout, self.run(key, gcra)).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(cause)) => return Err(RateLimitError::Unavailable(cause)),
                Err(_) => {
                    return Err(RateLimitError::Unavailable(format!(
                        "Redis did not answer within {:?}",
                        self.command_timeout
                    )));
                }
            };
        let micros = |value: i64| {
            u64::try_from(value).map_err(|_| {
                RateLimitError::Unavailable(format!("unexpected reply from Redis: {value}"))
            })
        };
        Ok(gcra.decision(allowed == 1, micros(reset)?, micros(retry)?))
    }
}
