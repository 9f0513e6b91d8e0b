//! `SeaSessionRepository`: the `SessionRepository` port over the `sessions` and `refresh_tokens` tables.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{RepositoryError, SessionRepository};
use domain::{RefreshToken, RevokeReason, SecretDigest, Session, SessionId, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
};

use crate::database::Database;
use crate::entity::{refresh_tokens, sessions};
use crate::error::unavailable;
use crate::mapper::session::{to_active_model, to_domain, token_to_active_model, token_to_domain};
use crate::mapper::stored;

/// Sessions in PostgreSQL or SQLite, always on the primary: a revocation must be seen by the very
/// next request, whatever a replica's lag.
#[derive(Debug, Clone)]
pub struct SeaSessionRepository {
    database: Database,
}

impl SeaSessionRepository {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

#[async_trait]
impl SessionRepository for SeaSessionRepository {
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        insert(self.database.writer(), session).await
    }

    async fn find(&self, id: SessionId) -> Result<Option<Session>, RepositoryError> {
        find(self.database.writer(), id).await
    }

    async fn find_by_secret(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<Session>, RepositoryError> {
        find_by_secret(self.database.writer(), digest).await
    }

    async fn list_active(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Session>, RepositoryError> {
        list_active(self.database.writer(), user, now, limit).await
    }

    async fn touch(&self, session: &Session) -> Result<bool, RepositoryError> {
        touch(self.database.writer(), session).await
    }

    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        revoke(self.database.writer(), id, reason, now).await
    }

    async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        revoke_all(self.database.writer(), user, keep, reason, now).await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), RepositoryError> {
        insert_refresh_token(self.database.writer(), token).await
    }

    async fn find_refresh_token(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<RefreshToken>, RepositoryError> {
        find_refresh_token(self.database.writer(), digest).await
    }

    async fn use_refresh_token(
        &self,
        digest: &SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        use_refresh_token(self.database.writer(), digest, now).await
    }
}

/// Stores a new session on `connection`; in a PostgreSQL transaction a missing user aborts it.
pub(crate) async fn insert<C: ConnectionTrait>(
    connection: &C,
    session: &Session,
) -> Result<(), RepositoryError> {
    sessions::Entity::insert(to_active_model(session))
        .exec_without_returning(connection)
        .await
        .map(|_| ())
        .map_err(|error| write_error(error, "user_id"))
}

pub(crate) async fn find<C: ConnectionTrait>(
    connection: &C,
    id: SessionId,
) -> Result<Option<Session>, RepositoryError> {
    let row = sessions::Entity::find_by_id(id.as_uuid())
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(row.map(to_domain).transpose()?)
}

pub(crate) async fn find_by_secret<C: ConnectionTrait>(
    connection: &C,
    digest: &SecretDigest,
) -> Result<Option<Session>, RepositoryError> {
    let row = sessions::Entity::find()
        .filter(sessions::Column::SecretDigest.eq(digest.0.as_str()))
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(row.map(to_domain).transpose()?)
}

pub(crate) async fn list_active<C: ConnectionTrait>(
    connection: &C,
    user: UserId,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Session>, RepositoryError> {
    let now = stored(now);
    let rows = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user.as_uuid()))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::IdleExpiresAt.gt(now))
        .filter(sessions::Column::ExpiresAt.gt(now))
        .order_by_desc(sessions::Column::CreatedAt)
        .order_by_desc(sessions::Column::Id)
        .limit(limit)
        .all(connection)
        .await
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| to_domain(row).map_err(RepositoryError::from))
        .collect()
}

pub(crate) async fn touch<C: ConnectionTrait>(
    connection: &C,
    session: &Session,
) -> Result<bool, RepositoryError> {
    let result = sessions::Entity::update_many()
        .col_expr(
            sessions::Column::LastUsedAt,
            Expr::value(stored(session.last_used_at)),
        )
        .col_expr(
            sessions::Column::IdleExpiresAt,
            Expr::value(stored(session.idle_expires_at)),
        )
        .filter(sessions::Column::Id.eq(session.id.as_uuid()))
        .exec(connection)
        .await
        .map_err(unavailable)?;
    Ok(result.rows_affected > 0)
}

pub(crate) async fn revoke<C: ConnectionTrait>(
    connection: &C,
    id: SessionId,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool, RepositoryError> {
    let result = revocation(reason, now)
        .filter(sessions::Column::Id.eq(id.as_uuid()))
        .exec(connection)
        .await
        .map_err(unavailable)?;
    Ok(result.rows_affected > 0)
}

pub(crate) async fn revoke_all<C: ConnectionTrait>(
    connection: &C,
    user: UserId,
    keep: Option<SessionId>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<u64, RepositoryError> {
    let mut update = revocation(reason, now).filter(sessions::Column::UserId.eq(user.as_uuid()));
    if let Some(keep) = keep {
        update = update.filter(sessions::Column::Id.ne(keep.as_uuid()));
    }
    let result = update.exec(connection).await.map_err(unavailable)?;
    Ok(result.rows_affected)
}

/// `UPDATE sessions SET revoked_at, revoke_reason WHERE revoked_at IS NULL`: a session keeps the
/// first reason it was revoked for.
fn revocation(reason: RevokeReason, now: DateTime<Utc>) -> sea_orm::UpdateMany<sessions::Entity> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(stored(now)))
        .col_expr(sessions::Column::RevokeReason, Expr::value(reason.as_str()))
        .filter(sessions::Column::RevokedAt.is_null())
}

pub(crate) async fn insert_refresh_token<C: ConnectionTrait>(
    connection: &C,
    token: &RefreshToken,
) -> Result<(), RepositoryError> {
    refresh_tokens::Entity::insert(token_to_active_model(token))
        .exec_without_returning(connection)
        .await
        .map(|_| ())
        .map_err(|error| write_error(error, "session_id"))
}

pub(crate) async fn find_refresh_token<C: ConnectionTrait>(
    connection: &C,
    digest: &SecretDigest,
) -> Result<Option<RefreshToken>, RepositoryError> {
    let row = refresh_tokens::Entity::find_by_id(digest.0.clone())
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(row.map(token_to_domain))
}

/// `UPDATE ... SET used_at WHERE digest = ? AND used_at IS NULL`: the row lock (or SQLite's write
/// lock) lets exactly one of two concurrent calls change the row.
pub(crate) async fn use_refresh_token<C: ConnectionTrait>(
    connection: &C,
    digest: &SecretDigest,
    now: DateTime<Utc>,
) -> Result<bool, RepositoryError> {
    let result = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(stored(now)))
        .filter(refresh_tokens::Column::Digest.eq(digest.0.as_str()))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .exec(connection)
        .await
        .map_err(unavailable)?;
    Ok(result.rows_affected > 0)
}

/// A broken foreign key names the parent (`reference`); a unique violation is the id (or digest).
fn write_error(error: DbErr, reference: &'static str) -> RepositoryError {
    match error.sql_err() {
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => RepositoryError::Conflict(reference),
        Some(SqlErr::UniqueConstraintViolation(_)) if reference == "session_id" => {
            RepositoryError::Conflict("digest")
        }
        Some(SqlErr::UniqueConstraintViolation(_)) => RepositoryError::Conflict("id"),
        _ => unavailable(error),
    }
}
