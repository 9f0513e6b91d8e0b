//! Settlement: `positions.payout_cents` (set once, when the market is settled) and an index of the positions still to pay.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::big_integer_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Positions::Table)
                    .add_column(
                        big_integer_null(Positions::PayoutCents)
                            .check(Expr::col(Positions::PayoutCents).gte(0)),
                    )
                    .to_owned(),
            )
            .await?;
        // Settlement reads a market's unpaid positions in id order, one batch at a time; the
        // partial index holds only those, so it shrinks to nothing as markets are settled.
        manager
            .create_index(
                Index::create()
                    .name("ix_positions_unsettled")
                    .table(Positions::Table)
                    .col(Positions::MarketId)
                    .col(Positions::Id)
                    .and_where(Expr::col(Positions::PayoutCents).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_positions_unsettled")
                    .table(Positions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Positions::Table)
                    .drop_column(Positions::PayoutCents)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Positions {
    Table,
    Id,
    MarketId,
    PayoutCents,
}
