//! The `relay_cursors` table: where each outbox relay stands and who holds its lease.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, text, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RelayCursors::Table)
                    .col(text(RelayCursors::Name).primary_key())
                    // The last outbox sequence the relay published.
                    .col(
                        big_integer(RelayCursors::Position)
                            .check(Expr::col(RelayCursors::Position).gte(0)),
                    )
                    .col(text(RelayCursors::Holder))
                    .col(timestamp_with_time_zone(RelayCursors::LeaseUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RelayCursors::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum RelayCursors {
    Table,
    Name,
    Position,
    Holder,
    LeaseUntil,
}
