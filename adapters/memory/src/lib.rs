//! In-process adapters for every port of the domain: one in-memory store with transactions, clocks, id generators and health probes.
//!
//! [`InMemoryStore`] holds users, sessions, markets, positions, the outbox, idempotency records and jobs in one
//! shared state and hands out a repository per port plus an [`InMemoryUnitOfWork`]. They honour
//! the port contracts exactly as the SQL adapters do (the same contract suites run against
//! both), so use cases can be tested in microseconds and the composition root can swap them for
//! the real thing. [`SystemClock`] and [`UuidV7Generator`] are the production implementations of
//! their ports; [`FixedClock`] and [`SequentialIdGenerator`] are for deterministic tests.
//! [`InProcessRecentWrites`] remembers recent writers for read-your-own-writes routing, and
//! [`InMemoryRelayCursors`] where an outbox relay stands; [`InMemoryBlobStore`] keeps blobs (and fails
//! on demand).

mod blobs;
mod clock;
mod failure;
mod idempotency;
mod ids;
mod jobs;
mod markets;
mod outbox;
mod paging;
mod positions;
mod probe;
mod recent_writes;
mod relay_cursors;
mod search;
mod sessions;
mod store;
mod transaction;
mod users;

pub use blobs::InMemoryBlobStore;
pub use clock::{FixedClock, SystemClock};
pub use idempotency::InMemoryIdempotencyStore;
pub use ids::{SequentialIdGenerator, UuidV7Generator};
pub use jobs::InMemoryJobQueue;
pub use markets::InMemoryMarketRepository;
pub use outbox::InMemoryOutbox;
pub use positions::InMemoryPositionRepository;
pub use probe::StaticProbe;
pub use recent_writes::InProcessRecentWrites;
pub use relay_cursors::InMemoryRelayCursors;
pub use search::InMemoryKeywordSearch;
pub use sessions::InMemorySessionRepository;
pub use store::InMemoryStore;
pub use transaction::InMemoryUnitOfWork;
pub use users::InMemoryUserRepository;
