//! The `markets` table and one index per listing path of `MarketListQuery`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, pk_uuid, text, text_null, timestamp_with_time_zone, uuid,
};
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20261122_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Markets::Table)
                    .col(pk_uuid(Markets::Id))
                    .col(byte_ordered(text(Markets::Name), backend))
                    .col(byte_ordered(text(Markets::Description), backend))
                    .col(text(Markets::Category))
                    .col(
                        text(Markets::Status).check(Expr::col(Markets::Status).is_in([
                            "active",
                            "closed",
                            "resolved",
                            "cancelled",
                        ])),
                    )
                    .col(timestamp_with_time_zone(Markets::EndDate))
                    .col(uuid(Markets::CreatorId))
                    .col(cents(Markets::YesVolumeCents))
                    .col(cents(Markets::NoVolumeCents))
                    .col(cents(Markets::VolumeCents))
                    .col(
                        text_null(Markets::Outcome)
                            .check(Expr::col(Markets::Outcome).is_in(["yes", "no"])),
                    )
                    .col(text_null(Markets::ImageUrl))
                    .col(text_null(Markets::ThumbnailUrl))
                    .col(big_integer(Markets::Version))
                    .col(timestamp_with_time_zone(Markets::CreatedAt))
                    .col(timestamp_with_time_zone(Markets::UpdatedAt))
                    // `volume_cents` is derived; it is stored only so that it can be indexed.
                    .check(Expr::col(Markets::VolumeCents).eq(
                        Expr::col(Markets::YesVolumeCents).add(Expr::col(Markets::NoVolumeCents)),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_markets_creator_id")
                            .from(Markets::Table, Markets::CreatorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // Every sort path ends with `id`, the tie-break of every listing, so that a page is read
        // straight from the index. Descending keys are the ones clients sort descending by default.
        let indexes = [
            // `status=active&sort=-volume`: the front page; also `status` with `min_volume`.
            index("ix_markets_status_volume")
                .col(Markets::Status)
                .col((Markets::VolumeCents, IndexOrder::Desc))
                .col(Markets::Id)
                .to_owned(),
            // `status=active` with the default sort (`-created_at`); any `status` filter alone.
            index("ix_markets_status_created_at")
                .col(Markets::Status)
                .col((Markets::CreatedAt, IndexOrder::Desc))
                .col(Markets::Id)
                .to_owned(),
            // `status=active&sort=end_date` (closing soon) and finding active markets past their
            // end date (`status` with `end_before`).
            index("ix_markets_status_end_date")
                .col(Markets::Status)
                .col(Markets::EndDate)
                .col(Markets::Id)
                .to_owned(),
            // No filter, default sort (`-created_at`).
            index("ix_markets_created_at")
                .col((Markets::CreatedAt, IndexOrder::Desc))
                .col(Markets::Id)
                .to_owned(),
            // `sort=-updated_at` (recently changed).
            index("ix_markets_updated_at")
                .col((Markets::UpdatedAt, IndexOrder::Desc))
                .col(Markets::Id)
                .to_owned(),
            // `sort=-volume` without a status filter; `min_volume` alone.
            index("ix_markets_volume")
                .col((Markets::VolumeCents, IndexOrder::Desc))
                .col(Markets::Id)
                .to_owned(),
            // `sort=end_date`; `end_before` / `end_after` ranges.
            index("ix_markets_end_date")
                .col(Markets::EndDate)
                .col(Markets::Id)
                .to_owned(),
            // `sort=name`.
            index("ix_markets_name")
                .col(Markets::Name)
                .col(Markets::Id)
                .to_owned(),
            // `category=...` with the default sort.
            index("ix_markets_category_created_at")
                .col(Markets::Category)
                .col((Markets::CreatedAt, IndexOrder::Desc))
                .col(Markets::Id)
                .to_owned(),
            // `creator_id=...` ("my markets") with the default sort; also the foreign-key check
            // when a user is deleted.
            index("ix_markets_creator_id_created_at")
                .col(Markets::CreatorId)
                .col((Markets::CreatedAt, IndexOrder::Desc))
                .col(Markets::Id)
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Markets::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        // SQLite has transactional DDL too: a failed migration leaves nothing half-done.
        Some(true)
    }
}

/// A non-negative amount of cents, zero by default.
fn cents(column: Markets) -> ColumnDef {
    big_integer(column)
        .default(0)
        .check(Expr::col(column).gte(0))
        .take()
}

/// A text column that sorts, compares and lower-cases by bytes, as SQLite and Rust do. PostgreSQL
/// would otherwise follow the database locale: a different order for `sort=name`, and `lower()`
/// folding non-ASCII letters that SQLite leaves alone.
fn byte_ordered(mut column: ColumnDef, backend: DbBackend) -> ColumnDef {
    if backend == DbBackend::Postgres {
        column.extra(r#"COLLATE "C""#);
    }
    column
}

fn index(name: &str) -> IndexCreateStatement {
    Index::create().name(name).table(Markets::Table).to_owned()
}

#[derive(DeriveIden, Clone, Copy)]
enum Markets {
    Table,
    Id,
    Name,
    Description,
    Category,
    Status,
    EndDate,
    CreatorId,
    YesVolumeCents,
    NoVolumeCents,
    VolumeCents,
    Outcome,
    ImageUrl,
    ThumbnailUrl,
    Version,
    CreatedAt,
    UpdatedAt,
}
