//! The `jobs` table: the job queue, with an index for fetching and a unique key per live job.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, pk_uuid, small_integer, text, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The states a job can be in; `available` and `running` are live.
const STATES: [&str; 4] = ["available", "running", "succeeded", "dead"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let length = |column: Jobs| Expr::expr(Func::cust("length").arg(Expr::col(column)));
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(pk_uuid(Jobs::Id))
                    .col(text(Jobs::Kind).check(length(Jobs::Kind).between(1, 64)))
                    // JSON text, at most 64 KiB (checked by the domain).
                    .col(text(Jobs::Payload))
                    // 0 high, 1 normal, 2 low: `ORDER BY priority` takes high first.
                    .col(
                        small_integer(Jobs::Priority)
                            .check(Expr::col(Jobs::Priority).between(0, 2)),
                    )
                    .col(text(Jobs::State).check(Expr::col(Jobs::State).is_in(STATES)))
                    .col(integer(Jobs::Attempts).check(Expr::col(Jobs::Attempts).gte(0)))
                    .col(
                        integer(Jobs::MaxAttempts)
                            .check(Expr::col(Jobs::MaxAttempts).between(1, 100)),
                    )
                    .col(timestamp_with_time_zone(Jobs::RunAt))
                    .col(timestamp_with_time_zone_null(Jobs::LeaseUntil))
                    .col(text_null(Jobs::Worker))
                    .col(text_null(Jobs::LastError))
                    .col(text_null(Jobs::UniqueKey))
                    .col(uuid_null(Jobs::Owner))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    // A running job always has a worker and a lease.
                    .check(
                        Expr::col(Jobs::State)
                            .ne("running")
                            .or(Expr::col(Jobs::Worker)
                                .is_not_null()
                                .and(Expr::col(Jobs::LeaseUntil).is_not_null())),
                    )
                    .to_owned(),
            )
            .await?;

        // `fetch`: the due jobs of a state in priority, then `run_at`, then id order.
        manager
            .create_index(
                Index::create()
                    .name("ix_jobs_state_priority_run_at")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col(Jobs::Priority)
                    .col(Jobs::RunAt)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await?;
        // `list`: newest first, by state or not.
        manager
            .create_index(
                Index::create()
                    .name("ix_jobs_state_created_at")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col((Jobs::CreatedAt, IndexOrder::Desc))
                    .col((Jobs::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_jobs_created_at")
                    .table(Jobs::Table)
                    .col((Jobs::CreatedAt, IndexOrder::Desc))
                    .col((Jobs::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        // One live job per unique key (a partial index: finished jobs keep theirs as history).
        manager
            .create_index(
                Index::create()
                    .name("ux_jobs_unique_key_live")
                    .table(Jobs::Table)
                    .col(Jobs::UniqueKey)
                    .unique()
                    .and_where(live_with_key())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// The predicate of the unique index; `INSERT ... ON CONFLICT` in `job_queue.rs` repeats it word
/// for word.
fn live_with_key() -> Expr {
    Expr::cust("unique_key IS NOT NULL AND state NOT IN ('succeeded', 'dead')")
}

#[derive(DeriveIden, Clone, Copy)]
enum Jobs {
    Table,
    Id,
    Kind,
    Payload,
    Priority,
    State,
    Attempts,
    MaxAttempts,
    RunAt,
    LeaseUntil,
    Worker,
    LastError,
    UniqueKey,
    Owner,
    CreatedAt,
    UpdatedAt,
}
