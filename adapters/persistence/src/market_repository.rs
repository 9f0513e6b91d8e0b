//! `SeaMarketRepository`: the `MarketRepository` port over the `markets` table, with optimistic
//! concurrency on `version`.

use async_trait::async_trait;
use domain::listing::{MarketListQuery, MarketProjection, Page, PageRequest};
use domain::ports::{MarketRepository, RepositoryError};
use domain::{Market, MarketId};
use sea_orm::ActiveValue::NotSet;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, SqlErr};
use uuid::Uuid;

use crate::database::Database;
use crate::entity::markets::{self, Column};
use crate::error::unavailable;
use crate::mapper::market::{to_active_model, to_domain, to_projection};
use crate::market_query;

/// Markets in PostgreSQL or SQLite. Lists go to the read replica when there is one; reads by id
/// stay on the primary, because changes read-then-write with optimistic concurrency (ADR 0004).
#[derive(Debug, Clone)]
pub struct SeaMarketRepository {
    database: Database,
}

impl SeaMarketRepository {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

#[async_trait]
impl MarketRepository for SeaMarketRepository {
    async fn insert(&self, market: &Market) -> Result<(), RepositoryError> {
        insert(self.database.writer(), market).await
    }

    async fn find_by_id(&self, id: MarketId) -> Result<Option<Market>, RepositoryError> {
        find_by_id(self.database.writer(), id).await
    }

    async fn list(
        &self,
        query: &MarketListQuery,
    ) -> Result<Page<MarketProjection>, RepositoryError> {
        list(self.database.reader(), query).await
    }

    async fn update(&self, market: &Market, expected_version: i64) -> Result<(), RepositoryError> {
        update(self.database.writer(), market, expected_version).await
    }

    async fn delete(&self, id: MarketId, expected_version: i64) -> Result<(), RepositoryError> {
        delete(self.database.writer(), id, expected_version).await
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
        None => count(connection, query).await?,
    };
    Ok(Page {
        items,
        total,
        request: query.page,
    })
}

/// The total when the page itself shows it: a page that is not full is the last one, unless it
/// is empty past the first (the offset may be beyond the end).
fn total_from_page(page: PageRequest, items: usize) -> Option<u64> {
    let items = u64::try_from(items).ok()?;
    let last_page = items < page.limit() && (items > 0 || page.offset() == 0);
    last_page.then(|| page.offset() + items)
}

async fn count<C: ConnectionTrait>(
    connection: &C,
    query: &MarketListQuery,
) -> Result<u64, RepositoryError> {
    let row = connection
        .query_one(&market_query::count(&query.filter))
        .await
        .map_err(unavailable)?;
    let total: i64 = match row {
        Some(row) => row.try_get("", "total").map_err(unavailable)?,
        None => 0,
    };
    Ok(u64::try_from(total).unwrap_or_default())
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
        .map_err(unavailable)?;
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
