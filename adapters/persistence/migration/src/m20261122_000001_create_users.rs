//! The `users` table: accounts, their role and credit balance; email unique case-insensitively.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, boolean, pk_uuid, text, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    // Stored lower-cased by the domain (`Email::parse`).
                    .col(text(Users::Email))
                    .col(text(Users::Name))
                    .col(text(Users::PasswordHash))
                    .col(text(Users::Role).check(Expr::col(Users::Role).is_in([
                        "admin",
                        "moderator",
                        "user",
                    ])))
                    .col(
                        big_integer(Users::BalanceCents)
                            .default(0)
                            .check(Expr::col(Users::BalanceCents).gte(0)),
                    )
                    .col(boolean(Users::Disabled).default(false))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // Sign-up and sign-in (`find_by_email`, `insert`): one account per address, whatever its
        // case, even for rows not written through the domain. Raw SQL because sea-query cannot
        // write an expression index for SQLite; this statement means the same on both.
        manager
            .get_connection()
            .execute_unprepared("CREATE UNIQUE INDEX ux_users_lower_email ON users (lower(email))")
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        // SQLite has transactional DDL too: a failed migration leaves nothing half-done.
        Some(true)
    }
}

#[derive(DeriveIden)]
pub(crate) enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    Role,
    BalanceCents,
    Disabled,
    CreatedAt,
    UpdatedAt,
}
