//! `SeaMarketRepository`: the `MarketRepository` port over the `markets` table, with optimistic
//! concurrency on `version`.

use async_trait::async_trait;
use domain::listing::{MarketListQuery, MarketProjection, Page};
use domain::ports::{MAX_BATCH, MarketRepository, RepositoryError};
use domain::{Market, MarketId};
use sea_orm::ActiveValue::NotSet;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QuerySelect, SqlErr,
};
use uuid::Uuid;

use crate::database::Database;
use crate::entity::markets::{self, Column};
use crate::error::unavailable;
use crate::listing::{self, total_from_page};
use crate::mapper::market::{to_active_model, to_domain, to_projection};
use crate::market_query;

/// Markets in PostgreSQL or SQLite.
///
/// Built with [`SeaMarketRepository::new`], `list` and `find_many` read from the read replica
/// when there is one; built with [`SeaMarketRepository::on_primary`] they read from the primary,
/// for a caller that must see its own recent writes. Either way `find_by_id` stays on the primary,
/// because changes read-then-write with optimistic concurrency, and writes go to the primary
/// (ADR 0004).
#[derive(Debug, Clone)]
pub struct SeaMarketRepository {
    database: Database,
    lists_on_primary: bool,
}

impl SeaMarketRepository {
    /// Lists (and `find_many`) on the replica, when there is one.
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self {
            database,
            lists_on_primary: false,
        }
    }

    /// Lists (and `find_many`) on the primary: read-your-own-writes.
    #[must_use]
    pub fn on_primary(database: Database) -> Self {
        Self {
            database,
            lists_on_primary: true,
        }
    }

    fn lists(&self) -> &DatabaseConnection {
        if self.lists_on_primary {
            self.database.writer()
        } else {
            self.database.reader()
        }
    }

    /// Runs one write in its own transaction, `BEGIN IMMEDIATE` on SQLite. A write to `markets`
    /// also writes the keyword index (FTS5 triggers, which read its tables first): as a bare
    /// autocommit statement in WAL mode it could fail with `SQLITE_BUSY_SNAPSHOT` when another
    /// connection committed in between, which no busy timeout retries. Taking the write lock
    /// before the first read makes concurrent writers wait for each other instead.
    async fn write<T>(
        &self,
        write: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, RepositoryError>,
    ) -> Result<T, RepositoryError> {
        let transaction = crate::database::begin_writing(self.database.writer())
            .await
            .map_err(unavailable)?;
        let result = write(&transaction).await;
        if result.is_ok() {
            transaction.commit().await.map_err(unavailable)?;
        }
        result
    }
}

#[async_trait]
impl MarketRepository for SeaMarketRepository {
    async fn insert(&self, market: &Market) -> Result<(), RepositoryError> {
        self.write(async |connection| insert(connection, market).await)
            .await
    }

    async fn find_by_id(&self, id: MarketId) -> Result<Option<Market>, RepositoryError> {
        find_by_id(self.database.writer(), id).await
    }

    async fn find_many(&self, ids: &[MarketId]) -> Result<Vec<Market>, RepositoryError> {
        find_many(self.lists(), ids).await
    }

    async fn list(
        &self,
        query: &MarketListQuery,
    ) -> Result<Page<MarketProjection>, RepositoryError> {
        list(self.lists(), query).await
    }

    async fn update(&self, market: &Market, expected_version: i64) -> Result<(), RepositoryError> {
        self.write(async |connection| update(connection, market, expected_version).await)
            .await
    }

    async fn delete(&self, id: MarketId, expected_version: i64) -> Result<(), RepositoryError> {
        self.write(async |connection| delete(connection, id, expected_version).await)
            .await
    }
}

/// Stores a new market on `connection` (a pool or a transaction).
pub(crate) async fn insert<C: ConnectionTrait>(
    connection: &C,
    market: &Market,
) -> Result<(), RepositoryError> {
    markets::Entity::insert(to_active_model(market))
        .exec_without_returning(connection)
        .await
        .map(|_| ())
        .map_err(write_error)
}

/// The market with this id, read on `connection`.
pub(crate) async fn find_by_id<C: ConnectionTrait>(
    connection: &C,
    id: MarketId,
) -> Result<Option<Market>, RepositoryError> {
    let row = markets::Entity::find_by_id(id.as_uuid())
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(row.map(to_domain).transpose()?)
}

/// The markets with these ids, read on `connection`: one `WHERE id IN (...)` query per
/// [`MAX_BATCH`] ids (so one query for any input the port allows), none for no ids.
pub(crate) async fn find_many<C: ConnectionTrait>(
    connection: &C,
    ids: &[MarketId],
) -> Result<Vec<Market>, RepositoryError> {
    let mut markets = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_BATCH) {
        let rows = markets::Entity::find()
            .filter(Column::Id.is_in(chunk.iter().map(MarketId::as_uuid)))
            .all(connection)
            .await
            .map_err(unavailable)?;
        for row in rows {
            markets.push(to_domain(row)?);
        }
    }
    Ok(markets)
}

/// One page of a listing and the number of matches, read on `connection`.
pub(crate) async fn list<C: ConnectionTrait>(
    connection: &C,
    query: &MarketListQuery,
) -> Result<Page<MarketProjection>, RepositoryError> {
    let rows = connection
        .query_all(&market_query::page(query))
        .await
        .map_err(unavailable)?;
    let items = rows
        .iter()
        .map(|row| to_projection(row, &query.fields))
        .collect::<Result<Vec<_>, _>>()?;
    let total = match total_from_page(query.page, items.len()) {
        Some(total) => total,
        None => listing::count(connection, &market_query::count(&query.filter)).await?,
    };
    Ok(Page {
        items,
        total,
        request: query.page,
    })
}

/// Replaces the stored market if its version is still `expected_version`.
pub(crate) async fn update<C: ConnectionTrait>(
    connection: &C,
    market: &Market,
    expected_version: i64,
) -> Result<(), RepositoryError> {
    let mut row = to_active_model(market);
    row.id = NotSet;
    let result = markets::Entity::update_many()
        .set(row)
        .filter(Column::Id.eq(market.id.as_uuid()))
        .filter(Column::Version.eq(expected_version))
        .exec(connection)
        .await
        .map_err(write_error)?;
    if result.rows_affected > 0 {
        Ok(())
    } else {
        Err(missing_or_stale(connection, market.id.as_uuid()).await)
    }
}

/// Deletes the market if its version is still `expected_version`.
pub(crate) async fn delete<C: ConnectionTrait>(
    connection: &C,
    id: MarketId,
    expected_version: i64,
) -> Result<(), RepositoryError> {
    let result = markets::Entity::delete_many()
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::Version.eq(expected_version))
        .exec(connection)
        .await
        .map_err(|error| match error.sql_err() {
            // The only reference to a market is a position's.
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                RepositoryError::Conflict("positions")
            }
            _ => unavailable(error),
        })?;
    if result.rows_affected > 0 {
        Ok(())
    } else {
        Err(missing_or_stale(connection, id.as_uuid()).await)
    }
}

/// Why a change guarded by a version touched no row: the market is gone, or its version moved.
async fn missing_or_stale<C: ConnectionTrait>(connection: &C, id: Uuid) -> RepositoryError {
    let found = markets::Entity::find_by_id(id)
        .select_only()
        .column(Column::Id)
        .into_tuple::<Uuid>()
        .one(connection)
        .await;
    match found {
        Ok(Some(_)) => RepositoryError::Stale,
        Ok(None) => RepositoryError::NotFound,
        Err(error) => unavailable(error),
    }
}

/// The only unique rule of `markets` is its primary key; its only reference is the creator.
fn write_error(error: DbErr) -> RepositoryError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => RepositoryError::Conflict("id"),
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => RepositoryError::Conflict("creator_id"),
        _ => unavailable(error),
    }
}
