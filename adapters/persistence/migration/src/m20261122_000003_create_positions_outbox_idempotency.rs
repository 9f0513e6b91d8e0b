//! The `positions`, `outbox_events` and `idempotency_keys` tables, with one index per query path.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_pk_auto, blob_null, integer_null, pk_uuid, text, text_null,
    timestamp_with_time_zone, uuid, uuid_uniq,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_positions(manager).await?;
        create_outbox_events(manager).await?;
        create_idempotency_keys(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            OutboxEvents::Table.into_iden(),
            Positions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        // SQLite has transactional DDL too: a failed migration leaves nothing half-done.
        Some(true)
    }
}

/// Stakes: each references a market and a user that can then not be deleted.
async fn create_positions(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Positions::Table)
                .col(pk_uuid(Positions::Id))
                .col(uuid(Positions::MarketId))
                .col(uuid(Positions::UserId))
                .col(text(Positions::Side).check(Expr::col(Positions::Side).is_in(["yes", "no"])))
                .col(
                    big_integer(Positions::AmountCents)
                        .check(Expr::col(Positions::AmountCents).gt(0)),
                )
                .col(timestamp_with_time_zone(Positions::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_positions_market_id")
                        .from(Positions::Table, Positions::MarketId)
                        .to(Markets::Table, Markets::Id)
                        .on_delete(ForeignKeyAction::Restrict)
                        .on_update(ForeignKeyAction::Restrict),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_positions_user_id")
                        .from(Positions::Table, Positions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Restrict)
                        .on_update(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;

    // Positions are listed by market (the market page, settlement) or by user ("my positions"),
    // sorted by `created_at` (the default, newest first) or `amount`; every index ends with `id`,
    // the tie-break, so that a page is read straight from the index. The leading column also
    // serves the foreign-key check when a market or a user is deleted.
    let indexes = [
        index("ix_positions_market_id_created_at")
            .col(Positions::MarketId)
            .col((Positions::CreatedAt, IndexOrder::Desc))
            .col(Positions::Id)
            .to_owned(),
        index("ix_positions_market_id_amount")
            .col(Positions::MarketId)
            .col((Positions::AmountCents, IndexOrder::Desc))
            .col(Positions::Id)
            .to_owned(),
        index("ix_positions_user_id_created_at")
            .col(Positions::UserId)
            .col((Positions::CreatedAt, IndexOrder::Desc))
            .col(Positions::Id)
            .to_owned(),
        index("ix_positions_user_id_amount")
            .col(Positions::UserId)
            .col((Positions::AmountCents, IndexOrder::Desc))
            .col(Positions::Id)
            .to_owned(),
    ];
    for index in indexes {
        manager.create_index(index).await?;
    }
    Ok(())
}

/// The transactional outbox: `sequence` numbers events in commit order (`BIGSERIAL` on
/// PostgreSQL, `INTEGER PRIMARY KEY AUTOINCREMENT` on SQLite: never reused), and the relay reads
/// by it.
async fn create_outbox_events(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(OutboxEvents::Table)
                .col(big_pk_auto(OutboxEvents::Sequence))
                .col(uuid_uniq(OutboxEvents::Id))
                .col(text(OutboxEvents::EventType))
                // The JSON of the `RecordedEvent`.
                .col(text(OutboxEvents::Payload))
                .col(timestamp_with_time_zone(OutboxEvents::OccurredAt))
                .col(
                    timestamp_with_time_zone(OutboxEvents::RecordedAt)
                        .default(Expr::current_timestamp()),
                )
                .to_owned(),
        )
        .await
}

/// Idempotency records, one per (caller, route, key), with the response kept for replay.
async fn create_idempotency_keys(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let bounded = |column: IdempotencyKeys, max: i64| {
        text(column)
            .check(Expr::expr(Func::cust("length").arg(Expr::col(column))).between(1, max))
            .take()
    };
    manager
        .create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(bounded(IdempotencyKeys::Caller, 64))
                .col(bounded(IdempotencyKeys::Route, 255))
                .col(bounded(IdempotencyKeys::Key, 255))
                .col(text(IdempotencyKeys::Fingerprint))
                .col(
                    text(IdempotencyKeys::State).check(
                        Expr::col(IdempotencyKeys::State).is_in(["in_progress", "completed"]),
                    ),
                )
                .col(integer_null(IdempotencyKeys::ResponseStatus))
                // A JSON array of `[name, value]` pairs.
                .col(text_null(IdempotencyKeys::ResponseHeaders))
                .col(blob_null(IdempotencyKeys::ResponseBody))
                .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                .col(timestamp_with_time_zone(IdempotencyKeys::LeaseUntil))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::Caller)
                        .col(IdempotencyKeys::Route)
                        .col(IdempotencyKeys::Key),
                )
                // A completed record always has a response to replay.
                .check(
                    Expr::col(IdempotencyKeys::State)
                        .eq("in_progress")
                        .or(Expr::col(IdempotencyKeys::ResponseStatus)
                            .is_not_null()
                            .and(Expr::col(IdempotencyKeys::ResponseHeaders).is_not_null())
                            .and(Expr::col(IdempotencyKeys::ResponseBody).is_not_null())),
                )
                .to_owned(),
        )
        .await?;

    // `purge_expired`.
    manager
        .create_index(
            Index::create()
                .name("ix_idempotency_keys_expires_at")
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::ExpiresAt)
                .to_owned(),
        )
        .await
}

fn index(name: &str) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(Positions::Table)
        .to_owned()
}

/// The referenced tables, named here so that this migration stays as it was applied whatever
/// later migrations do.
#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Markets {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Positions {
    Table,
    Id,
    MarketId,
    UserId,
    Side,
    AmountCents,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OutboxEvents {
    Table,
    Sequence,
    Id,
    EventType,
    Payload,
    OccurredAt,
    RecordedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyKeys {
    Table,
    Caller,
    Route,
    Key,
    Fingerprint,
    State,
    ResponseStatus,
    ResponseHeaders,
    ResponseBody,
    CreatedAt,
    ExpiresAt,
    LeaseUntil,
}
