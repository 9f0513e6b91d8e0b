//! The cache port ([`domain::ports::Cache`]) in process (moka) and over Redis (deadpool-redis).
//!
//! - [`InProcessCache`]: one process's memory, bounded in bytes; for the embedded profile and tests.
//! - [`RedisCache`]: shared by every instance; [`RedisProbe`] reports whether it answers.
//! - [`TieredCache`]: an [`InProcessCache`] in front of a [`RedisCache`], kept coherent across
//!   instances by Redis pub/sub, behind a circuit breaker.
//!
//! All keep an entry at most [`MAX_TTL`], and at least a millisecond (Redis's resolution).
//!
//! # Invalidation messages
//!
//! The Redis cache publishes every change on `{key_prefix}invalidations`, from the Lua script that
//! makes it. Each message is text, fields separated by one space, the key or namespace last (it
//! may hold spaces); `origin` is the publishing [`RedisCache`]'s [`RedisCache::origin`]:
//!
//! | message | published when |
//! |---|---|
//! | `{origin} e {version} {key}` | `set_if_newer` stored `version` under `key` |
//! | `{origin} d {key}` | `delete` removed `key` |
//! | `{origin} g {generation} {namespace}` | `bump_generation` moved `namespace` to `generation` |
//! | `{origin} flush {epoch}` | [`RedisCache::bump_epoch`] voided every entry |

mod breaker;
mod counters;
mod in_process;
mod invalidation;
mod redis_cache;
mod tiered;

use std::time::Duration;

pub use in_process::InProcessCache;
pub use redis_cache::{RedisCache, RedisCacheConfig, RedisConfigError, RedisProbe};
pub use tiered::{TieredCache, TieredCacheConfig};

/// The longest time to live either cache grants; longer ones are shortened to it.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The shortest time to live either cache grants; shorter ones (zero too) are lengthened to it.
pub const MIN_TTL: Duration = Duration::from_millis(1);

/// `ttl` within [`MIN_TTL`, `MAX_TTL`].
fn bounded_ttl(ttl: Duration) -> Duration {
    ttl.clamp(MIN_TTL, MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_is_kept_between_one_millisecond_and_a_year() {
        assert_eq!(bounded_ttl(Duration::ZERO), MIN_TTL);
        assert_eq!(bounded_ttl(Duration::from_micros(10)), MIN_TTL);
        assert_eq!(bounded_ttl(Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(bounded_ttl(Duration::MAX), MAX_TTL);
    }
}
