//! SeaORM persistence for PostgreSQL and SQLite: connection pools, migrations, a health probe and
//! the repositories of the domain's ports. SeaORM models never leave this crate.

mod database;
mod entity;
mod error;
mod health;
mod mapper;
mod market_query;
mod market_repository;
mod migrations;
mod user_repository;

pub use database::{ConnectError, Database, PoolOptions, connect};
pub use error::CorruptRow;
pub use health::DatabaseProbe;
pub use market_repository::SeaMarketRepository;
pub use migrations::{MigrateError, MigrationStatus, migrate_up, migration_status};
pub use user_repository::SeaUserRepository;
