//! The `sessions` and `refresh_tokens` tables: server-side sessions and their refresh-token families.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    pk_uuid, text, text_null, timestamp_with_time_zone, timestamp_with_time_zone_null, uuid,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const MODES: [&str; 2] = ["bearer", "cookie"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let length = |column: Sessions| Expr::expr(Func::cust("length").arg(Expr::col(column)));
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(pk_uuid(Sessions::Id))
                    .col(uuid(Sessions::UserId))
                    .col(text(Sessions::Mode).check(Expr::col(Sessions::Mode).is_in(MODES)))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::LastUsedAt))
                    .col(timestamp_with_time_zone(Sessions::IdleExpiresAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .col(text_null(Sessions::RevokeReason))
                    .col(
                        text_null(Sessions::UserAgent).check(length(Sessions::UserAgent).lte(1024)),
                    )
                    // SHA-256 digests in hex; the secrets themselves are never stored.
                    .col(text_null(Sessions::SecretDigest))
                    .col(text_null(Sessions::CsrfDigest))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user_id")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            // Deleting a user ends their sessions.
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // "My sessions", and revoking all of a user's sessions.
        manager
            .create_index(
                Index::create()
                    .name("ix_sessions_user_id_created_at")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .col((Sessions::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        // Cookie sign-in: the session by its secret's digest.
        manager
            .create_index(
                Index::create()
                    .name("ux_sessions_secret_digest")
                    .table(Sessions::Table)
                    .col(Sessions::SecretDigest)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(text(RefreshTokens::Digest).primary_key())
                    .col(uuid(RefreshTokens::SessionId))
                    .col(timestamp_with_time_zone(RefreshTokens::IssuedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_session_id")
                            .from(RefreshTokens::Table, RefreshTokens::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_refresh_tokens_session_id")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    UserId,
    Mode,
    CreatedAt,
    LastUsedAt,
    IdleExpiresAt,
    ExpiresAt,
    RevokedAt,
    RevokeReason,
    UserAgent,
    SecretDigest,
    CsrfDigest,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Digest,
    SessionId,
    IssuedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
