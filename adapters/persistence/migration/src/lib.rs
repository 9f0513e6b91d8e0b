//! Schema migrations for PostgreSQL and SQLite, applied in file-name order by [`Migrator`].

pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_users;
mod m20261122_000002_create_markets;
mod m20261122_000003_create_positions_outbox_idempotency;
mod m20261122_000004_create_relay_cursors;
mod m20261122_000005_create_jobs;
mod m20261122_000006_add_position_payouts;
mod m20261122_000007_create_sessions;
mod m20261122_000008_add_market_search;

/// Every migration of the service, oldest first. Names come from the file names.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_markets::Migration),
            Box::new(m20261122_000003_create_positions_outbox_idempotency::Migration),
            Box::new(m20261122_000004_create_relay_cursors::Migration),
            Box::new(m20261122_000005_create_jobs::Migration),
            Box::new(m20261122_000006_add_position_payouts::Migration),
            Box::new(m20261122_000007_create_sessions::Migration),
            Box::new(m20261122_000008_add_market_search::Migration),
        ]
    }
}
