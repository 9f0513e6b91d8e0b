//! SeaORM persistence for PostgreSQL and SQLite: connection pools, migrations, a health probe, the
//! repositories of the domain's ports, the outbox, idempotency records, the job queue, the unit
//! of work, keyword search and the pgvector index.
//! SeaORM models never leave this crate.

mod database;
mod entity;
mod error;
mod health;
mod idempotency_store;
mod job_queue;
mod listing;
mod mapper;
mod market_query;
mod market_repository;
mod market_search;
mod migrations;
mod outbox;
mod pgvector_index;
mod position_repository;
mod relay_cursors;
mod session_repository;
mod unit_of_work;
mod user_repository;

pub use database::{ConnectError, Database, PoolOptions, StatementObserver, connect};
pub use error::CorruptRow;
pub use health::DatabaseProbe;
pub use idempotency_store::SeaIdempotencyStore;
pub use job_queue::SeaJobQueue;
pub use market_repository::SeaMarketRepository;
pub use market_search::{MATCHES_RANKED, SeaKeywordSearch};
pub use migrations::{MigrateError, MigrationStatus, migrate_up, migration_status};
pub use outbox::SeaOutbox;
pub use pgvector_index::{PgVectorIndex, PgVectorUnavailable};
pub use position_repository::SeaPositionRepository;
pub use relay_cursors::SeaRelayCursors;
pub use session_repository::SeaSessionRepository;
pub use unit_of_work::SeaUnitOfWork;
pub use user_repository::SeaUserRepository;
