//! The event bus port ([`domain::ports::EventBus`]) in process and over a Redis stream.
//!
//! - [`InProcessEventBus`]: a tokio `broadcast` channel, for the embedded profile (one process)
//!   and tests.
//! - [`RedisEventBus`]: one Redis stream shared by every instance; each subscriber reads the whole
//!   stream with `XREAD` (fan-out: every subscriber of every instance gets every event; there are
//!   no consumer groups, which would share the events among consumers instead).
//!
//! Both drop an event whose sequence is not above the last one published, so a relay that
//! restarts and publishes a batch again delivers nothing twice (on Redis, as long as the stream
//! still holds the newest published entry: a Redis restart without persistence forgets it, and the
//! replay is then delivered again; subscribers are idempotent, as the port requires).
//!
//! # Redis data layout
//!
//! One stream at [`RedisEventBusConfig::stream_key`]. The entry for an event has the id
//! `{sequence}-0` and one field, `e`, holding the [`domain::RecordedEvent`] as JSON. The stream is
//! trimmed at every publish to about [`RedisEventBusConfig::max_len`] entries (`MAXLEN ~`, or
//! exactly, `MAXLEN =`, below [`EXACT_TRIM_BELOW`] entries). A subscriber that falls more than
//! that far behind is told [`domain::ports::EventBusError::Lagged`].

mod in_process;
mod redis_bus;
mod stream;

pub use in_process::InProcessEventBus;
pub use redis_bus::{
    EXACT_TRIM_BELOW, RedisEventBus, RedisEventBusConfig, RedisEventBusConfigError,
};
