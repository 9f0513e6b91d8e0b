//! `SeaUserRepository`: the `UserRepository` port over the `users` table.

use async_trait::async_trait;
use domain::ports::{MAX_BATCH, RepositoryError, UserRepository};
use domain::{Email, User, UserId};
use sea_orm::ActiveValue::NotSet;
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, SqlErr};

use crate::database::Database;
use crate::entity::users::{self, Column};
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
        let connection = self.database.writer();
        let inserted = insert_row(connection, user).await;
        email_before_id(connection, user, inserted).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        find_by_id(self.database.writer(), id).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError> {
        find_by_email(self.database.writer(), email).await
    }

    async fn find_many(&self, ids: &[UserId]) -> Result<Vec<User>, RepositoryError> {
        find_many(self.database.writer(), ids).await
    }

    async fn update(&self, user: &User) -> Result<(), RepositoryError> {
        update(self.database.writer(), user).await
    }
}

/// Stores a new user on `connection` (a pool, a transaction or a savepoint), reporting any unique
/// violation that is not the email as `Conflict("id")`; [`email_before_id`] then puts the rules
/// in the port's order.
///
/// Inside a PostgreSQL transaction a failed statement aborts the transaction: run this in a
/// savepoint, and [`email_before_id`] after it.
pub(crate) async fn insert_row<C: ConnectionTrait>(
    connection: &C,
    user: &User,
) -> Result<(), RepositoryError> {
    users::Entity::insert(to_active_model(user))
        .exec_without_returning(connection)
        .await
        .map(|_| ())
        .map_err(write_error)
}

/// The port says a taken email wins over a taken id; PostgreSQL checks the primary key before the
/// email index, so a row whose id *and* email are both taken reports the id. An id conflict
/// therefore looks the email up on `connection` before answering.
pub(crate) async fn email_before_id<C: ConnectionTrait>(
    connection: &C,
    user: &User,
    inserted: Result<(), RepositoryError>,
) -> Result<(), RepositoryError> {
    match inserted {
        Err(RepositoryError::Conflict("id"))
            if find_by_email(connection, &user.email).await?.is_some() =>
        {
            Err(RepositoryError::Conflict("email"))
        }
        other => other,
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
            Expr::expr(Func::lower(Expr::col(Column::Email)))
                .eq(Func::lower(Expr::val(email.as_str()))),
        )
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(row.map(to_domain).transpose()?)
}

/// The users with these ids, read on `connection`: one `WHERE id IN (...)` query per
/// [`MAX_BATCH`] ids (so one query for any input the port allows; more are not refused, only
/// split), none for no ids.
pub(crate) async fn find_many<C: ConnectionTrait>(
    connection: &C,
    ids: &[UserId],
) -> Result<Vec<User>, RepositoryError> {
    let mut users = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_BATCH) {
        let rows = users::Entity::find()
            .filter(Column::Id.is_in(chunk.iter().map(UserId::as_uuid)))
            .all(connection)
            .await
            .map_err(unavailable)?;
        for row in rows {
            users.push(to_domain(row)?);
        }
    }
    Ok(users)
}

/// Replaces the stored user with `user` on `connection`; in a PostgreSQL transaction, run it in a
/// savepoint (an email conflict aborts the transaction otherwise).
pub(crate) async fn update<C: ConnectionTrait>(
    connection: &C,
    user: &User,
) -> Result<(), RepositoryError> {
    let mut row = to_active_model(user);
    row.id = NotSet;
    let result = users::Entity::update_many()
        .set(row)
        .filter(Column::Id.eq(user.id.as_uuid()))
        .exec(connection)
        .await
        .map_err(write_error)?;
    if result.rows_affected > 0 {
        Ok(())
    } else {
        Err(RepositoryError::NotFound)
    }
}

/// A unique violation is the email index (`ux_users_lower_email`, named in the message on both
/// databases), or (never in practice: ids are v7 UUIDs) the primary key.
fn write_error(error: DbErr) -> RepositoryError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) if message.contains("email") => {
            RepositoryError::Conflict("email")
        }
        Some(SqlErr::UniqueConstraintViolation(_)) => RepositoryError::Conflict("id"),
        _ => unavailable(error),
    }
}
