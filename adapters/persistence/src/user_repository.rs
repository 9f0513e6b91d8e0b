//! `SeaUserRepository`: the `UserRepository` port over the `users` table.

use async_trait::async_trait;
use domain::ports::{RepositoryError, UserRepository};
use domain::{Email, User, UserId};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryFilter, SqlErr};

use crate::database::Database;
use crate::entity::users;
use crate::error::unavailable;
use crate::mapper::user::{to_active_model, to_domain};

/// Users in PostgreSQL or SQLite. Every read stays on the primary: sign-in right after registration
/// must see the new account, whatever a replica's lag (ADR 0004).
#[derive(Debug, Clone)]
pub struct SeaUserRepository {
    database: Database,
}

impl SeaUserRepository {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

#[async_trait]
impl UserRepository for SeaUserRepository {
    async fn insert(&self, user: &User) -> Result<(), RepositoryError> {
        insert(self.database.writer(), user).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        find_by_id(self.database.writer(), id).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError> {
        find_by_email(self.database.writer(), email).await
    }
}

/// Stores a new user on `connection` (a pool or a transaction).
///
/// PostgreSQL checks the primary key before the email index, so a row whose id *and* email are
/// both taken reports the id; the port says the email wins, so an id conflict looks the email up
/// before answering. (Inside a PostgreSQL transaction that look-up would fail after the error; a
/// unit of work inserting users must use a savepoint.)
pub(crate) async fn insert<C: ConnectionTrait>(
    connection: &C,
    user: &User,
) -> Result<(), RepositoryError> {
    let result = users::Entity::insert(to_active_model(user))
        .exec_without_returning(connection)
        .await;
    match result.map_err(insert_error) {
        Ok(_) => Ok(()),
        Err(RepositoryError::Conflict("id"))
            if find_by_email(connection, &user.email).await?.is_some() =>
        {
            Err(RepositoryError::Conflict("email"))
        }
        Err(other) => Err(other),
    }
}

/// The user with this id, read on `connection`.
pub(crate) async fn find_by_id<C: ConnectionTrait>(
    connection: &C,
    id: UserId,
) -> Result<Option<User>, RepositoryError> {
    let row = users::Entity::find_by_id(id.as_uuid())
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(row.map(to_domain).transpose()?)
}

/// The user with this email, read on `connection`. Compares `lower(email)`, the expression of the
/// unique index, so that the index is used and the lookup agrees with the uniqueness rule.
pub(crate) async fn find_by_email<C: ConnectionTrait>(
    connection: &C,
    email: &Email,
) -> Result<Option<User>, RepositoryError> {
    let row = users::Entity::find()
        .filter(
            Expr::expr(Func::lower(Expr::col(users::Column::Email)))
                .eq(Func::lower(Expr::val(email.as_str()))),
        )
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(row.map(to_domain).transpose()?)
}

/// A unique violation on insert is the email index, or (never in practice: ids are v7 UUIDs) the
/// primary key.
fn insert_error(error: DbErr) -> RepositoryError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) if message.contains("email") => {
            RepositoryError::Conflict("email")
        }
        Some(SqlErr::UniqueConstraintViolation(_)) => RepositoryError::Conflict("id"),
        _ => unavailable(error),
    }
}
