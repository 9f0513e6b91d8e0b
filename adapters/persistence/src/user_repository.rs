//! `SeaUserRepository`: the `UserRepository` port over the `users` table.

use async_trait::async_trait;
use domain::listing::{Page, UserFilter, UserListQuery};
use domain::ports::{MAX_BATCH, RepositoryError, UserRepository};
use domain::{Email, User, UserId};
use sea_orm::ActiveValue::NotSet;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, SqlErr,
};

use crate::database::Database;
use crate::entity::users::{self, Column};
use crate::entity::{markets, positions};
use crate::error::unavailable;
use crate::listing::{self, TOTAL, total_from_page, window};
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

    async fn list(&self, query: &UserListQuery) -> Result<Page<User>, RepositoryError> {
        list(self.database.writer(), query).await
    }

    async fn delete(&self, id: UserId) -> Result<(), RepositoryError> {
        delete(self.database.writer(), id).await
    }
}

/// One page of the matching users, oldest first then by id, read on `connection`.
pub(crate) async fn list<C: ConnectionTrait>(
    connection: &C,
    query: &UserListQuery,
) -> Result<Page<User>, RepositoryError> {
    let select = users::Entity::find()
        .filter(condition(&query.filter))
        .order_by(Column::CreatedAt, Order::Asc)
        .order_by(Column::Id, Order::Asc);
    let rows = window(select, query.page)
        .all(connection)
        .await
        .map_err(unavailable)?;
    let items = rows
        .into_iter()
        .map(to_domain)
        .collect::<Result<Vec<_>, _>>()?;
    let total = match total_from_page(query.page, items.len()) {
        Some(total) => total,
        None => listing::count(connection, &count(&query.filter)).await?,
    };
    Ok(Page {
        items,
        total,
        request: query.page,
    })
}

fn count(filter: &UserFilter) -> SelectStatement {
    users::Entity::find()
        .select_only()
        .column_as(Expr::col((users::Entity, Column::Id)).count(), TOTAL)
        .filter(condition(filter))
        .into_query()
}

/// Every present condition of `filter`, joined with AND. The email prefix is matched with `LIKE`,
/// its `%`, `_` and `\` escaped so that they match themselves.
fn condition(filter: &UserFilter) -> Condition {
    Condition::all()
        .add_option(filter.role.map(|role| Column::Role.eq(role.as_str())))
        .add_option(filter.email_prefix.as_ref().map(|prefix| {
            let escaped = prefix
                .as_str()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            Expr::col(Column::Email).like(LikeExpr::new(format!("{escaped}%")).escape('\\'))
        }))
}

/// Deletes a user on `connection` (their sessions go with them, `ON DELETE CASCADE`), unless
/// markets or positions refer to them. Checked first so that both databases name the reason
/// (SQLite's foreign-key message names no table); a reference added concurrently still fails the
/// delete through the foreign key.
pub(crate) async fn delete<C: ConnectionTrait>(
    connection: &C,
    id: UserId,
) -> Result<(), RepositoryError> {
    let owns_markets = markets::Entity::find()
        .filter(markets::Column::CreatorId.eq(id.as_uuid()))
        .count(connection)
        .await
        .map_err(unavailable)?;
    if owns_markets > 0 {
        return Err(RepositoryError::Conflict("markets"));
    }
    let holds_positions = positions::Entity::find()
        .filter(positions::Column::UserId.eq(id.as_uuid()))
        .count(connection)
        .await
        .map_err(unavailable)?;
    if holds_positions > 0 {
        return Err(RepositoryError::Conflict("positions"));
    }
    let result = users::Entity::delete_by_id(id.as_uuid())
        .exec(connection)
        .await
        .map_err(|error| match error.sql_err() {
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => RepositoryError::Conflict("markets"),
            _ => unavailable(error),
        })?;
    if result.rows_affected > 0 {
        Ok(())
    } else {
        Err(RepositoryError::NotFound)
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

/// Replaces the stored user with `user` on `connection`. In a PostgreSQL transaction an email
/// conflict aborts the transaction; an unknown id does not (no row matched).
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
