//! The rate-limiter port ([`domain::ports::RateLimiter`]) in process and over Redis, and a fallback between them.
//!
//! All three count with the generic cell rate algorithm (GCRA): per key, one theoretical arrival
//! time (TAT); a request is allowed when the TAT, pushed one emission interval (`period / limit`)
//! further, stays within `period` of now. A key that is full again needs no state, so entries
//! live until their TAT and no more (see ADR 0013).
//!
//! - [`InProcessRateLimiter`]: one process's memory (moka), bounded in keys.
//! - [`RedisRateLimiter`]: one Lua script per lease of cells, atomic and on Redis's clock: limits hold
//!   across every instance sharing the Redis and key prefix.
//! - [`FallbackRateLimiter`]: Redis, and the in-process limiter while Redis fails (limits then
//!   hold per instance), with a cool-down before Redis is tried again.

mod fallback;
mod gcra;
mod in_process;
mod redis_limiter;

pub use fallback::FallbackRateLimiter;
pub use in_process::InProcessRateLimiter;
pub use redis_limiter::{
    MAX_LEASE, RedisRateLimiter, RedisRateLimiterConfig, RedisRateLimiterError,
};
