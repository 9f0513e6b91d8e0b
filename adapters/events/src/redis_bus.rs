//! `RedisEventBus`: the event bus port over one Redis stream shared by every instance (fan-out
//! `XREAD`, no consumer groups).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncConnectionConfig, Script, Value};
use deadpool_redis::{Manager, Pool, Runtime};
use domain::ports::{BoxError, EventBus, EventBusError, EventSubscription, StoredEvent};
use tokio::sync::watch;

use crate::stream::{self, Entry, StreamId, UnexpectedReply};

/// Below this [`RedisEventBusConfig::max_len`], the stream is trimmed exactly (`MAXLEN =`), above
/// it approximately (`MAXLEN ~`, whole nodes of about 100 entries at a time, much cheaper). Small
/// streams (tests, tiny deployments) would otherwise never be trimmed.
pub const EXACT_TRIM_BELOW: usize = 1_000;

/// Entries read at most per `XREAD`.
const READ_COUNT: usize = 100;

/// Connections kept open for publishing (publishes come from the relay, one batch at a time).
const PUBLISH_CONNECTIONS: usize = 4;

/// The first wait before a subscription reconnects; it doubles with every failure in a row.
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// The longest wait before a subscription reconnects.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Adds the events `ARGV[3]`, `ARGV[5]`, ... (JSON) with the ids `ARGV[2 + 2k]`... to the stream
/// `KEYS[1]` under the field `e`, trimming it with `MAXLEN ARGV[1] ARGV[2]`; skips those whose id
/// is not above the stream's top id ("equal or smaller than the target stream top item"): they
/// were published already. Returns how many it added. Runs atomically, so concurrent publishers
/// never interleave a batch.
const PUBLISH: &str = r"
local added = 0
for i = 3, #ARGV, 2 do
  local reply = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[2], ARGV[i], 'e', ARGV[i + 1])
  if type(reply) == 'table' and reply.err then
    if not string.find(reply.err, 'equal or smaller', 1, true) then
      return redis.error_reply(reply.err)
    end
  else
    added = added + 1
  end
end
return added
";

/// Where a new subscription starts: `{last generated id, entries ever added}` of the stream
/// `KEYS[1]` (`{'0-0', 0}` when it does not exist; the count is false before Redis 7).
const START: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'0-0', 0}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, added = '0-0', false
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then
    last = info[i + 1]
  elseif info[i] == 'entries-added' then
    added = info[i + 1]
  end
end
return {last, added}
";

/// Reads after `ARGV[1]` (at most `ARGV[2]` entries) from the stream `KEYS[1]`, with what tells
/// whether entries after `ARGV[1]` were trimmed away, in one atomic step:
/// `{first entry id or false, entries ever added or false (before Redis 7), length, entries}`.
const CATCH_UP: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {false, false, 0, {}}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local first, added, length = false, false, 0
for i = 1, #info, 2 do
  if info[i] == 'first-entry' then
    if info[i + 1] then
      first = info[i + 1][1]
    end
  elseif info[i] == 'entries-added' then
    added = info[i + 1]
  elseif info[i] == 'length' then
    length = info[i + 1]
  end
end
return {first, added, length, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])}
";

/// How to reach the stream and how long to wait for Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisEventBusConfig {
    /// The stream every instance publishes to and reads from, such as `{prefix}events`.
    pub stream_key: String,
    /// About how many entries the stream keeps (trimmed at every publish, see
    /// [`EXACT_TRIM_BELOW`]); a subscriber further behind lags.
    pub max_len: usize,
    /// How long one command may take (a publish, from asking for a connection to the reply;
    /// reading where a subscription starts; the check for trimmed entries).
    pub command_timeout: Duration,
    /// How long opening a connection (TCP and handshake) may take.
    pub connect_timeout: Duration,
    /// How long one `XREAD` waits for new entries before it asks again (`XREAD BLOCK`).
    pub block: Duration,
}

impl Default for RedisEventBusConfig {
    /// `events`, 100 000 entries, commands 1 s, connections 1 s, `XREAD BLOCK` 1 s.
    fn default() -> Self {
        Self {
            stream_key: "events".to_owned(),
            max_len: 100_000,
            command_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            block: Duration::from_secs(1),
        }
    }
}

/// The Redis event bus cannot be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum RedisEventBusConfigError {
    #[error("the Redis URL is not valid")]
    Url(#[source] redis::RedisError),
    #[error("the Redis connection pool cannot be built")]
    Pool(#[source] deadpool_redis::BuildError),
    #[error("invalid Redis event bus configuration: {0}")]
    Invalid(&'static str),
}

/// A command did not finish in time.
#[derive(Debug, thiserror::Error)]
#[error("Redis did not answer within {0:?}")]
struct TimedOut(Duration);

fn unavailable(error: impl Into<BoxError>) -> EventBusError {
    EventBusError::Unavailable(error.into())
}

/// `work`, failing with [`EventBusError::Unavailable`] when it fails or outlasts `budget`.
async fn bounded<T>(
    budget: Duration,
    work: impl Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, EventBusError> {
    match tokio::time::timeout(budget, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(unavailable(error)),
        Err(_) => Err(unavailable(TimedOut(budget))),
    }
}

/// What every subscription of one bus shares.
struct Shared {
    client: redis::Client,
    stream_key: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    block: Duration,
    start: Script,
    catch_up: Script,
}

impl Shared {
    /// A new connection of a subscription's own, whose replies may take an `XREAD BLOCK` long.
    async fn connect(&self) -> Result<MultiplexedConnection, EventBusError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.block + self.command_timeout));
        bounded(
            self.connect_timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
    }
}

/// The event bus over one Redis stream, shared by every instance that uses the same Redis and
/// stream key (see the crate documentation for the layout).
///
/// [`EventBus::publish`] is one Lua script per batch: it adds each event as `{sequence}-0` unless
/// the stream's top id is already at or above it (published already: skipped, atomically with
/// respect to other publishers), and trims the stream. Every command is bounded by
/// `command_timeout`.
///
/// Each [`EventBus::subscribe`] opens a connection of its own (never shared with publishes) and
/// reads the whole stream with `XREAD BLOCK`, from the stream's top id at the time it subscribed:
/// fan-out, every subscriber gets every event, there are no consumer groups. When its connection
/// fails, [`EventSubscription::next`] reports [`EventBusError::Unavailable`], and the next call
/// reconnects (after a capped, jittered backoff) and goes on after the last entry it read:
/// nothing is lost as long as the stream still holds it. When the stream was trimmed past it, the
/// subscription reports [`EventBusError::Lagged`] with the number of entries it missed (exact on
/// Redis 7 and later; before, a gap in sequences counts as missed), then the oldest entries left.
/// Entries that hold no readable event are skipped with a warning. When the bus is dropped, its
/// subscriptions return what they already read, then [`EventBusError::Closed`].
pub struct RedisEventBus {
    pool: Pool,
    shared: Arc<Shared>,
    publish: Script,
    trim: &'static str,
    max_len: usize,
    /// Dropped with the bus, which tells subscriptions that it closed.
    closing: watch::Sender<()>,
}

impl std::fmt::Debug for RedisEventBus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisEventBus")
            .field("stream_key", &self.shared.stream_key)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl RedisEventBus {
    /// A bus on the stream `config.stream_key` of the Redis at `url` (`redis://host:port/db`).
    /// Connections are opened when first needed, not here: this fails only on a malformed URL or
    /// configuration.
    ///
    /// Needs a Tokio runtime when operations run.
    ///
    /// # Errors
    /// [`RedisEventBusConfigError`] when the URL cannot be parsed, the stream key is empty,
    /// `max_len` is 0 or a timeout (or `block`) is zero.
    pub fn connect(
        url: &str,
        config: RedisEventBusConfig,
    ) -> Result<Self, RedisEventBusConfigError> {
        if config.stream_key.is_empty() {
            return Err(RedisEventBusConfigError::Invalid(
                "stream_key must not be empty",
            ));
        }
        if config.max_len == 0 {
            return Err(RedisEventBusConfigError::Invalid(
                "max_len must be at least 1",
            ));
        }
        if config.command_timeout.is_zero()
            || config.connect_timeout.is_zero()
            || config.block.is_zero()
        {
            return Err(RedisEventBusConfigError::Invalid(
                "timeouts and block must not be zero",
            ));
        }
        if config.block.as_millis() == 0 {
            return Err(RedisEventBusConfigError::Invalid(
                "block must be at least a millisecond",
            ));
        }
        let client = redis::Client::open(url).map_err(RedisEventBusConfigError::Url)?;
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout));
        let manager =
            Manager::new_with_config(url, connection).map_err(RedisEventBusConfigError::Url)?;
        let pool = Pool::builder(manager)
            .max_size(PUBLISH_CONNECTIONS)
            .wait_timeout(Some(config.command_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.command_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(RedisEventBusConfigError::Pool)?;
        Ok(Self {
            pool,
            shared: Arc::new(Shared {
                client,
                stream_key: config.stream_key,
                command_timeout: config.command_timeout,
                connect_timeout: config.connect_timeout,
                block: config.block,
                start: Script::new(START),
                catch_up: Script::new(CATCH_UP),
            }),
            publish: Script::new(PUBLISH),
            trim: if config.max_len < EXACT_TRIM_BELOW {
                "="
            } else {
                "~"
            },
            max_len: config.max_len,
            closing: watch::Sender::new(()),
        })
    }

    /// The stream this bus publishes to and reads from.
    #[must_use]
    pub fn stream_key(&self) -> &str {
        &self.shared.stream_key
    }
}

#[async_trait]
impl EventBus for RedisEventBus {
    async fn publish(&self, events: &[StoredEvent]) -> Result<(), EventBusError> {
        let mut invocation = self.publish.key(&self.shared.stream_key);
        invocation.arg(self.trim).arg(self.max_len);
        let mut count = 0_usize;
        for event in events {
            let Some(id) = StreamId::of_sequence(event.sequence) else {
                tracing::warn!(
                    sequence = event.sequence,
                    "an event with a sequence below 1 cannot be published on a Redis stream; skipped"
                );
                continue;
            };
            let payload = serde_json::to_string(&event.event).map_err(unavailable)?;
            invocation.arg(id.to_string()).arg(payload);
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        let budget = self.shared.command_timeout;
        let work = async {
            let mut connection = self.pool.get().await.map_err(unavailable)?;
            invocation
                .invoke_async::<u64>(&mut connection)
                .await
                .map_err(unavailable)
        };
        let added = match tokio::time::timeout(budget, work).await {
            Ok(added) => added?,
            Err(_) => return Err(unavailable(TimedOut(budget))),
        };
        tracing::debug!(
            stream = %self.shared.stream_key,
            offered = count,
            added,
            "published events"
        );
        Ok(())
    }

    async fn subscribe(&self) -> Result<Box<dyn EventSubscription>, EventBusError> {
        let shared = &self.shared;
        let mut connection = shared.connect().await?;
        let (top, added): (String, Option<u64>) = bounded(
            shared.command_timeout,
            shared
                .start
                .key(&shared.stream_key)
                .invoke_async(&mut connection),
        )
        .await?;
        let last = top.parse::<StreamId>().map_err(unavailable)?;
        Ok(Box::new(RedisSubscription {
            closing: self.closing.subscribe(),
            reader: Reader {
                shared: Arc::clone(shared),
                connection: Some(connection),
                failures: 0,
                last,
                added_at_start: added,
                accounted: 0,
                buffer: VecDeque::new(),
            },
        }))
    }
}

/// One subscriber: its own connection, the last id it read, what it read but did not return yet.
struct RedisSubscription {
    /// Fails once the bus is dropped.
    closing: watch::Receiver<()>,
    reader: Reader,
}

struct Reader {
    shared: Arc<Shared>,
    /// `None` after a failure, until the next call reconnects.
    connection: Option<MultiplexedConnection>,
    /// Failures in a row, which lengthen the wait before reconnecting.
    failures: u32,
    /// The last entry id read (or the stream's top when subscribing).
    last: StreamId,
    /// The stream's `entries-added` when subscribing (`None` before Redis 7).
    added_at_start: Option<u64>,
    /// Entries added since subscribing that were read or reported lost.
    accounted: u64,
    /// Events read but not returned yet.
    buffer: VecDeque<StoredEvent>,
}

#[async_trait]
impl EventSubscription for RedisSubscription {
    async fn next(&mut self) -> Result<StoredEvent, EventBusError> {
        let Self { closing, reader } = self;
        loop {
            if let Some(event) = reader.buffer.pop_front() {
                return Ok(event);
            }
            if closing.has_changed().is_err() {
                return Err(EventBusError::Closed);
            }
            tokio::select! {
                biased;
                // Nothing is ever sent: this resolves only when the bus is dropped.
                _ = closing.changed() => return Err(EventBusError::Closed),
                read = reader.read() => read?,
            }
        }
    }
}

/// The wait before reconnecting after `failures` failures in a row: doubling from
/// [`RECONNECT_BACKOFF_MIN`] up to [`RECONNECT_BACKOFF_MAX`], times a random factor in [0.5, 1].
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let backoff = RECONNECT_BACKOFF_MIN
        .saturating_mul(1 << doublings)
        .min(RECONNECT_BACKOFF_MAX);
    backoff.mul_f64(rand::random_range(0.5..=1.0))
}

/// What [`CATCH_UP`] answers.
struct CatchUp {
    first: Option<StreamId>,
    added: Option<u64>,
    length: u64,
    entries: Vec<Entry>,
}

impl CatchUp {
    fn parse(reply: &Value) -> Result<Self, UnexpectedReply> {
        let [first, added, length, entries] = stream::array(reply)? else {
            return Err(UnexpectedReply(format!("a catch-up reply, not {reply:?}")));
        };
        Ok(Self {
            first: match first {
                Value::Nil | Value::Boolean(false) => None,
                id => Some(stream::stream_id(id)?),
            },
            added: stream::integer(added).and_then(|added| u64::try_from(added).ok()),
            length: stream::integer(length)
                .and_then(|length| u64::try_from(length).ok())
                .unwrap_or_default(),
            entries: stream::entries(entries)?,
        })
    }
}

impl Reader {
    /// The subscription's connection, reconnecting (after the backoff) when it failed.
    async fn connection(&mut self) -> Result<MultiplexedConnection, EventBusError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        if self.failures > 0 {
            tokio::time::sleep(backoff(self.failures)).await;
        }
        match self.shared.connect().await {
            Ok(connection) => {
                tracing::info!(
                    stream = %self.shared.stream_key,
                    after = %self.last,
                    "event subscription reconnected"
                );
                self.connection = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => Err(self.failed(error)),
        }
    }

    fn failed(&mut self, error: EventBusError) -> EventBusError {
        self.connection = None;
        self.failures = self.failures.saturating_add(1);
        tracing::warn!(
            stream = %self.shared.stream_key,
            failures = self.failures,
            error = %error,
            "event subscription failed; it reconnects on the next call"
        );
        error
    }

    /// Reads the next entries into the buffer (none when `XREAD` times out). Cancel safe: the
    /// state changes only once every reply is in.
    async fn read(&mut self) -> Result<(), EventBusError> {
        let shared = Arc::clone(&self.shared);
        let mut connection = self.connection().await?;
        let block_millis = u64::try_from(shared.block.as_millis()).unwrap_or(u64::MAX);
        let mut command = redis::cmd("XREAD");
        command
            .arg("BLOCK")
            .arg(block_millis)
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("STREAMS")
            .arg(&shared.stream_key)
            .arg(self.last.to_string());
        let reply = bounded(
            shared.block + shared.command_timeout,
            command.query_async::<Value>(&mut connection),
        )
        .await
        .map_err(|error| self.failed(error))?;
        let mut entries =
            stream::read_reply(&reply).map_err(|error| self.failed(unavailable(error)))?;
        let Some(first) = entries.first() else {
            self.failures = 0;
            return Ok(());
        };
        let mut lost = 0;
        if first.id.major > self.last.major.saturating_add(1) {
            // A gap: sequences skipped by rolled-back transactions, or entries trimmed away.
            let reply = bounded(
                shared.command_timeout,
                shared
                    .catch_up
                    .key(&shared.stream_key)
                    .arg(self.last.to_string())
                    .arg(READ_COUNT)
                    .invoke_async::<Value>(&mut connection),
            )
            .await
            .map_err(|error| self.failed(error))?;
            let catch_up =
                CatchUp::parse(&reply).map_err(|error| self.failed(unavailable(error)))?;
            lost = self.lost(&catch_up);
            entries = catch_up.entries;
        }
        // No await from here on.
        self.failures = 0;
        self.accounted = self
            .accounted
            .saturating_add(lost)
            .saturating_add(entries.len() as u64);
        for entry in entries {
            self.last = self.last.max(entry.id);
            match entry.event {
                Ok(event) => self.buffer.push_back(event),
                Err(reason) => tracing::warn!(
                    stream = %shared.stream_key,
                    id = %entry.id,
                    reason,
                    "skipped a stream entry that holds no readable event"
                ),
            }
        }
        if lost > 0 {
            tracing::warn!(stream = %shared.stream_key, lost, "event subscription lagged");
            return Err(EventBusError::Lagged(lost));
        }
        Ok(())
    }

    /// How many entries after the last one read were trimmed away, given an atomic look at the
    /// stream (re-basing the count when the stream was recreated meanwhile).
    fn lost(&mut self, catch_up: &CatchUp) -> u64 {
        let Some(first) = catch_up.first else {
            return 0;
        };
        if first <= self.last {
            // The stream still holds the last entry read, or an older one: nothing after it was
            // trimmed (trimming removes the oldest entries first).
            return 0;
        }
        // Every entry the stream holds is after the last one read.
        if let (Some(added), Some(start)) = (catch_up.added, self.added_at_start) {
            let after_last = added.checked_sub(start.saturating_add(self.accounted));
            return match after_last.and_then(|after| after.checked_sub(catch_up.length)) {
                Some(lost) => lost,
                None => {
                    // The stream was deleted and recreated (a Redis restart without persistence):
                    // count from now on.
                    self.added_at_start = Some(added.saturating_sub(catch_up.length));
                    self.accounted = 0;
                    0
                }
            };
        }
        // Before Redis 7 (no `entries-added`): a gap in sequences counts as entries lost.
        catch_up.entries.first().map_or(0, |entry| {
            entry
                .id
                .major
                .saturating_sub(self.last.major.saturating_add(1))
        })
    }
}
