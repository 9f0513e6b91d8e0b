//! Use cases of the prediction-markets service, written against the domain's ports only.
//!
//! [`UseCases`] holds the ports ([`Deps`]); each use case is a method defined in its own file,
//! grouped by aggregate (`users/`, `markets/`), with its own error enum.

pub mod caching;
pub mod events;
pub mod idempotency;
pub mod job_status;
pub mod jobs;
pub mod markets;
pub mod notifications;
pub mod positions;
pub mod sessions;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use domain::ports::{
    BlobStore, BoxError, Clock, IdGenerator, IdempotencyStore, JobQueue, MarketRepository,
    PasswordHasher, PositionRepository, RecentWrites, RepositoryError, SecretGenerator,
    SessionRepository, TokenIssuer, UnitOfWork, UserRepository,
};
use domain::{Actor, Amount, DomainEvent, EventId, RecordedEvent};

use crate::caching::CachedMarketRepository;

/// Every port the use cases need, chosen by the composition root.
#[derive(Clone)]
pub struct Deps {
    /// Users on the primary database.
    pub users: Arc<dyn UserRepository>,
    /// Markets on the primary database.
    pub markets: Arc<dyn MarketRepository>,
    /// Markets for lists, on a read replica when there is one.
    pub market_reads: Arc<dyn MarketRepository>,
    /// Markets as clients see them (rendered), through the cache when caching is on; told about
    /// every committed market change.
    pub cached_markets: CachedMarketRepository,
    /// Positions on the primary database.
    pub positions: Arc<dyn PositionRepository>,
    /// Positions for lists, on a read replica when there is one.
    pub position_reads: Arc<dyn PositionRepository>,
    /// Transactions over all of the above.
    pub unit_of_work: Arc<dyn UnitOfWork>,
    /// Idempotency claims (outside transactions; completion happens inside them).
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The job queue, outside transactions (inside one, use [`domain::ports::Transaction::jobs`]).
    pub jobs: Arc<dyn JobQueue>,
    /// Sign-in attempts per account (`None`: not limited).
    pub sessions: Arc<dyn SessionRepository>,
    /// Sessions as last read, for at most `Settings::sessions.check_cache_ttl`.
    pub session_cache: sessions::SessionCache,
    pub secrets: Arc<dyn SecretGenerator>,
    pub sign_in_throttle: Option<sessions::SignInThrottle>,
    /// Who wrote recently, to route their reads to the primary.
    pub recent_writes: Arc<dyn RecentWrites>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: Arc<dyn TokenIssuer>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    /// Uploaded market images and their thumbnails.
    pub blobs: Arc<dyn BlobStore>,
    /// Keyword and vector search over markets.
    pub search: markets::SearchEngine,
}

/// Business settings that are configuration rather than code.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Credits a new user starts with.
    pub starting_balance: Amount,
    /// After a write, how long the writer's list reads go to the primary rather than a replica.
    pub read_your_writes: Duration,
    /// How long a completed idempotency record is kept for replay.
    pub idempotency_ttl: Duration,
    /// How long an unfinished idempotency claim is honoured before another request may take it
    /// over (the first one crashed).
    pub idempotency_lease: Duration,
    /// Positions paid per transaction when a market is settled.
    pub settlement_batch: u64,
    /// The largest market image accepted, in bytes.
    pub max_image_bytes: usize,
    pub sessions: sessions::SessionSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            starting_balance: Amount::from_cents(100_000).unwrap_or(Amount::ZERO),
            read_your_writes: Duration::from_secs(5),
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            idempotency_lease: Duration::from_secs(60),
            settlement_batch: 500,
            max_image_bytes: 5 * 1024 * 1024,
            sessions: sessions::SessionSettings::default(),
        }
    }
}

/// The application: ports plus settings. Cheap to clone.
#[derive(Clone)]
pub struct UseCases {
    deps: Deps,
    settings: Settings,
}

impl UseCases {
    #[must_use]
    pub fn new(deps: Deps, settings: Settings) -> Self {
        Self { deps, settings }
    }

    /// The ports, for adapters that need one directly (e.g. the token check in an extractor).
    #[must_use]
    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// The settings, for adapters that enforce one themselves (e.g. the upload size limit).
    #[must_use]
    pub const fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A new event stamped with a fresh id and the current time.
    fn event(&self, event: DomainEvent) -> RecordedEvent {
        RecordedEvent {
            id: EventId::from_uuid(self.deps.ids.next_id()),
            occurred_at: self.deps.clock.now(),
            event,
        }
    }

    /// Notes that `actor` just committed a write (their next lists read the primary).
    fn wrote(&self, actor: &Actor) {
        self.deps
            .recent_writes
            .record(actor.user_id, self.deps.clock.now());
    }

    /// Whether `actor` wrote recently enough that a replica might not show it yet.
    fn needs_primary(&self, actor: Option<&Actor>) -> bool {
        actor.is_some_and(|actor| {
            let window = chrono::Duration::from_std(self.settings.read_your_writes)
                .unwrap_or(chrono::Duration::zero());
            self.deps
                .recent_writes
                .wrote_since(actor.user_id, self.deps.clock.now() - window)
        })
    }
}

/// A dependency failed; the use case had no effect. The cause is for logs only.
#[derive(Debug, thiserror::Error)]
#[error("a dependency failed")]
pub struct Unavailable(#[source] pub BoxError);

impl Unavailable {
    /// Wraps any infrastructure error.
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

impl From<RepositoryError> for Unavailable {
    fn from(error: RepositoryError) -> Self {
        Self::from_error(error)
    }
}
