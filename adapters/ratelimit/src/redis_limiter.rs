//! `RedisRateLimiter`: GCRA in one Lua script on Redis's clock, so that every instance sharing the Redis shares the limits, with cells leased in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::redis::{AsyncConnectionConfig, Script};
use deadpool_redis::{Manager, Pool, Runtime};
use domain::ports::{Quota, RateDecision, RateLimitError, RateLimiter};

use crate::gcra::Gcra;

/// GCRA on `KEYS[1]`, which holds the key's theoretical arrival time (TAT) in microseconds of
/// Redis's own clock (`TIME`: every instance agrees, whatever their clocks say).
///
/// `ARGV`: the emission interval and the tolerance (interval x limit), in µs, and the most cells
/// wanted. Counts as many requests as fit, up to that many (at least one, or none), the key then
/// living until its TAT (when it is rested again). Returns `{cells counted, µs until rested, 0}`
/// when at least one fits, `{0, µs until rested, µs until one request fits}` when none does.
/// With one cell wanted it is plain GCRA. Times are below 2^53 µs (year 2255), exact in Lua's
/// doubles; `%d` keeps them out of exponent notation.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local fits = math.floor((tolerance - (tat - now)) / interval)
if fits < 1 then
  return {0, tat - now, tat + interval - now - tolerance}
end
if fits > wanted then
  fits = wanted
end
local next = tat + fits * interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000))
return {fits, next - now, 0}
";

/// Cells leased per Redis call for `quota`: a sixteenth of the limit, 1 to [`MAX_LEASE`]. Small
/// quotas (sign-in, registration) lease one cell at a time: exactly plain GCRA.
fn lease_size(quota: Quota) -> u32 {
    (quota.limit() / 16).clamp(1, MAX_LEASE)
}

/// The most cells one call leases.
pub const MAX_LEASE: u32 = 64;

/// How long leased cells may be used before the unused ones are dropped: at most a second, and
/// never longer than the quota's period.
const LEASE_LIFETIME: Duration = Duration::from_secs(1);

/// What this process knows about one key without asking Redis.
#[derive(Debug, Clone, Copy)]
enum Lease {
    /// Cells counted in Redis already and not used yet.
    Cells {
        cells: u32,
        /// The unused cells are dropped then.
        until: Instant,
        /// What Redis had left after the lease, for `RateLimit-Remaining`.
        remaining_in_redis: u32,
        /// When the key is rested again, as Redis said at the lease.
        rested_at: Instant,
    },
    /// Redis refused: no cell fits before `until` (other instances can only use cells, never
    /// give them back), so refusals until then need no call. A flood over the limit costs Redis
    /// one call per retry interval, not one per request.
    Refused { until: Instant, rested_at: Instant },
}

impl Lease {
    /// The decision this lease makes alone, if it can: a leased cell, or a refusal.
    fn decide(&mut self, limit: u32, now: Instant) -> Option<RateDecision> {
        match self {
            Self::Cells {
                cells,
                until,
                remaining_in_redis,
                rested_at,
            } if *cells > 0 && now < *until => {
                *cells -= 1;
                Some(RateDecision {
                    allowed: true,
                    limit,
                    remaining: remaining_in_redis.saturating_add(*cells).min(limit),
                    reset_after: rested_at.saturating_duration_since(now),
                    retry_after: None,
                })
            }
            Self::Refused { until, rested_at } if now < *until => Some(RateDecision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after: rested_at.saturating_duration_since(now),
                retry_after: Some((*until - now).max(Duration::from_micros(1))),
            }),
            _ => None,
        }
    }
}

/// One key's lease, and the turn to refill it.
#[derive(Debug, Default)]
struct Slot {
    /// Held only to take a cell or store a new lease: never across an `.await`.
    lease: std::sync::Mutex<Option<Lease>>,
    /// Held across the Redis call that refills the lease, so that one key's callers wait for one
    /// call instead of each making their own.
    refill: tokio::sync::Mutex<()>,
}

impl Slot {
    fn decide(&self, limit: u32) -> Option<RateDecision> {
        let mut lease = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lease
            .as_mut()
            .and_then(|lease| lease.decide(limit, Instant::now()))
    }

    fn store(&self, lease: Lease) {
        *self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(lease);
    }
}

/// Leases by key, bounded.
type Leases = moka::future::Cache<String, Arc<Slot>>;

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

/// The rate-limiter port over Redis: atomic, on Redis's clock, shared by every instance with the
/// same Redis and key prefix. Every Redis call is bounded by `command_timeout`; a failure or a
/// timeout is [`RateLimitError::Unavailable`] and counts nothing.
///
/// **Leasing**: one call counts up to [`lease_size`] requests of a key at once (fewer when fewer
/// fit) and this process serves the next ones from that lease, for up to a second, without
/// asking Redis. The cells are counted in Redis before they are used, so every instance together
/// still never admits more than the quota; the price is that cells leased by one instance and not
/// used within the lease are lost for the others until GCRA gives them back (at most
/// [`MAX_LEASE`] per key and instance, and none for quotas under 32 per period, which lease one
/// cell at a time). See ADR 0013.
///
/// Cloning gives another handle on the same pool and leases.
#[derive(Clone)]
pub struct RedisRateLimiter {
    pool: Pool,
    key_prefix: Arc<str>,
    command_timeout: Duration,
    script: Arc<Script>,
    leases: Leases,
    round_trips: Arc<AtomicU64>,
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
            leases: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            round_trips: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Redis calls made so far (one per lease, or per refusal).
    #[must_use]
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// The prefix put before every key.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    async fn run(&self, key: &str, gcra: Gcra, wanted: u32) -> Result<(i64, i64, i64), String> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut connection = self.pool.get().await.map_err(|error| error.to_string())?;
        let mut invocation = self
            .script
            .key(format!("{}ratelimit:{key}", self.key_prefix));
        invocation
            .arg(gcra.interval)
            .arg(gcra.tolerance)
            .arg(wanted);
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| error.to_string())
    }

    /// Asks Redis for up to `wanted` cells of `key`: how many it counted, µs until the key is
    /// rested, µs until one request fits.
    async fn lease(
        &self,
        key: &str,
        gcra: Gcra,
        wanted: u32,
    ) -> Result<(u32, u64, u64), RateLimitError> {
        let (granted, reset, retry) =
            match tokio::time::timeout(self.command_timeout, self.run(key, gcra, wanted)).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(cause)) => return Err(RateLimitError::Unavailable(cause)),
                Err(_) => {
                    return Err(RateLimitError::Unavailable(format!(
                        "Redis did not answer within {:?}",
                        self.command_timeout
                    )));
                }
            };
        let unexpected = |value: i64| {
            RateLimitError::Unavailable(format!("unexpected reply from Redis: {value}"))
        };
        Ok((
            u32::try_from(granted)
                .ok()
                .filter(|granted| *granted <= wanted)
                .ok_or_else(|| unexpected(granted))?,
            u64::try_from(reset).map_err(|_| unexpected(reset))?,
            u64::try_from(retry).map_err(|_| unexpected(retry))?,
        ))
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
        let slot = match self.leases.get(key).await {
            Some(slot) => slot,
            None => {
                self.leases
                    .get_with_by_ref(key, async { Arc::new(Slot::default()) })
                    .await
            }
        };
        // The common case: a cell of the lease, or a refusal still standing, without awaiting.
        if let Some(decision) = slot.decide(quota.limit()) {
            return Ok(decision);
        }
        let _refill = slot.refill.lock().await;
        // Another caller may have refilled it while this one waited.
        if let Some(decision) = slot.decide(quota.limit()) {
            return Ok(decision);
        }
        let (granted, reset, retry) = self.lease(key, gcra, lease_size(quota)).await?;
        let now = Instant::now();
        if granted == 0 {
            slot.store(Lease::Refused {
                until: now + Duration::from_micros(retry),
                rested_at: now + Duration::from_micros(reset),
            });
            return Ok(gcra.decision(false, reset, retry));
        }
        let decision = gcra.decision(true, reset, 0);
        let unused = granted - 1;
        slot.store(Lease::Cells {
            cells: unused,
            until: now + LEASE_LIFETIME.min(quota.period()),
            remaining_in_redis: decision.remaining,
            rested_at: now + Duration::from_micros(reset),
        });
        Ok(RateDecision {
            remaining: decision.remaining.saturating_add(unused).min(quota.limit()),
            ..decision
        })
    }
}
