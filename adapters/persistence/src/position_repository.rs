//! `SeaPositionRepository`: the `PositionRepository` port over the `positions` table.

use async_trait::async_trait;
use domain::listing::{Page, PositionFilter, PositionListQuery, PositionSortKey};
use domain::ports::{PositionRepository, RepositoryError};
use domain::{Amount, MarketId, Position, PositionId};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, Order,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, SqlErr,
};
use uuid::Uuid;

use crate::database::Database;
use crate::entity::markets;
use crate::entity::positions::{self, Column};
use crate::error::unavailable;
use crate::listing::{self, TOTAL, order, total_from_page, window};
use crate::mapper::position::{to_active_model, to_domain};

/// Positions in PostgreSQL or SQLite. Inserts go to the primary.
///
/// Built with [`SeaPositionRepository::new`], `list` reads from the read replica when there is
/// one; built with [`SeaPositionRepository::on_primary`] it reads from the primary, for a caller
/// that must see its own recent writes (ADR 0004).
#[derive(Debug, Clone)]
pub struct SeaPositionRepository {
    database: Database,
    lists_on_primary: bool,
}

impl SeaPositionRepository {
    /// Lists on the replica, when there is one.
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self {
            database,
            lists_on_primary: false,
        }
    }

    /// Lists on the primary: read-your-own-writes.
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
}

#[async_trait]
impl PositionRepository for SeaPositionRepository {
    async fn insert(&self, position: &Position) -> Result<(), RepositoryError> {
        let connection = self.database.writer();
        let inserted = insert_row(connection, position).await;
        name_reference(connection, position, inserted).await
    }

    async fn list(&self, query: &PositionListQuery) -> Result<Page<Position>, RepositoryError> {
        list(self.lists(), query).await
    }

    async fn unsettled(
        &self,
        market: MarketId,
        limit: u64,
    ) -> Result<Vec<Position>, RepositoryError> {
        unsettled(self.database.writer(), market, limit).await
    }

    async fn record_payout(&self, id: PositionId, payout: Amount) -> Result<bool, RepositoryError> {
        record_payout(self.database.writer(), id, payout).await
    }
}

/// Up to `limit` unpaid positions of `market` by id, read on `connection` (the partial index
/// `ix_positions_unsettled` serves it).
pub(crate) async fn unsettled<C: ConnectionTrait>(
    connection: &C,
    market: MarketId,
    limit: u64,
) -> Result<Vec<Position>, RepositoryError> {
    positions::Entity::find()
        .filter(Column::MarketId.eq(market.as_uuid()))
        .filter(Column::PayoutCents.is_null())
        .order_by(Column::Id, Order::Asc)
        .limit(limit)
        .all(connection)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|row| to_domain(row).map_err(RepositoryError::from))
        .collect()
}

/// Sets the payout of a position that has none; `false` when no row had it unset.
pub(crate) async fn record_payout<C: ConnectionTrait>(
    connection: &C,
    id: PositionId,
    payout: Amount,
) -> Result<bool, RepositoryError> {
    let updated = positions::Entity::update_many()
        .col_expr(Column::PayoutCents, Expr::value(payout.cents()))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::PayoutCents.is_null())
        .exec(connection)
        .await
        .map_err(unavailable)?;
    Ok(updated.rows_affected == 1)
}

/// How an insert ended, before a broken reference that the database did not name is named.
pub(crate) enum Inserted {
    Done(Result<(), RepositoryError>),
    /// SQLite says only `FOREIGN KEY constraint failed`, never which one.
    UnnamedReference,
}

/// Stores a new position on `connection` (a pool or a transaction). A taken id is answered by
/// `ON CONFLICT DO NOTHING` (no error, so a PostgreSQL transaction is not aborted by it); a broken
/// reference is an error PostgreSQL names (and then aborts the transaction: the caller returns
/// the error) and SQLite does not ([`name_reference`] looks it up).
pub(crate) async fn insert_row<C: ConnectionTrait>(
    connection: &C,
    position: &Position,
) -> Inserted {
    let result = positions::Entity::insert(to_active_model(position))
        .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
        .exec_without_returning(connection)
        .await;
    match result {
        Ok(0) | Err(DbErr::RecordNotInserted) => {
            Inserted::Done(Err(RepositoryError::Conflict("id")))
        }
        Ok(_) => Inserted::Done(Ok(())),
        Err(error) => match write_error(error) {
            Some(result) => Inserted::Done(Err(result)),
            None => Inserted::UnnamedReference,
        },
    }
}

/// The result of an insert, a reference the database did not name (SQLite) named by looking the
/// market up on `connection`: a missing market is reported before a missing user.
pub(crate) async fn name_reference<C: ConnectionTrait>(
    connection: &C,
    position: &Position,
    inserted: Inserted,
) -> Result<(), RepositoryError> {
    match inserted {
        Inserted::Done(result) => result,
        Inserted::UnnamedReference => {
            if market_exists(connection, position.market_id).await? {
                Err(RepositoryError::Conflict("user_id"))
            } else {
                Err(RepositoryError::Conflict("market_id"))
            }
        }
    }
}

async fn market_exists<C: ConnectionTrait>(
    connection: &C,
    id: MarketId,
) -> Result<bool, RepositoryError> {
    let found = markets::Entity::find_by_id(id.as_uuid())
        .select_only()
        .column(markets::Column::Id)
        .into_tuple::<Uuid>()
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(found.is_some())
}

/// PostgreSQL names the broken foreign key in its message (`... violates foreign key constraint
/// "fk_positions_market_id"`); SQLite does not (`None`). The primary key never fails here
/// (`ON CONFLICT DO NOTHING`).
fn write_error(error: DbErr) -> Option<RepositoryError> {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => Some(RepositoryError::Conflict("id")),
        Some(SqlErr::ForeignKeyConstraintViolation(message)) => {
            if message.contains("fk_positions_market_id") {
                Some(RepositoryError::Conflict("market_id"))
            } else if message.contains("fk_positions_user_id") {
                Some(RepositoryError::Conflict("user_id"))
            } else {
                None
            }
        }
        _ => Some(unavailable(error)),
    }
}

/// One page of the matching positions and the number of matches, read on `connection`.
pub(crate) async fn list<C: ConnectionTrait>(
    connection: &C,
    query: &PositionListQuery,
) -> Result<Page<Position>, RepositoryError> {
    let rows = page(query).all(connection).await.map_err(unavailable)?;
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

/// One page of the matching positions, in the requested order then by id.
fn page(query: &PositionListQuery) -> Select<positions::Entity> {
    let mut select = positions::Entity::find().filter(condition(&query.filter));
    for &(key, direction) in query.sort.keys() {
        select = select.order_by(sort_column(key), order(direction));
    }
    window(select.order_by(Column::Id, Order::Asc), query.page)
}

/// The number of matching positions, as one `total` column.
fn count(filter: &PositionFilter) -> SelectStatement {
    positions::Entity::find()
        .select_only()
        .column_as(Expr::col((positions::Entity, Column::Id)).count(), TOTAL)
        .filter(condition(filter))
        .into_query()
}

/// Every present condition of `filter`, joined with AND.
fn condition(filter: &PositionFilter) -> Condition {
    Condition::all()
        .add_option(
            filter
                .market_id
                .map(|market| Column::MarketId.eq(market.as_uuid())),
        )
        .add_option(filter.user_id.map(|user| Column::UserId.eq(user.as_uuid())))
        .add_option(filter.side.map(|side| Column::Side.eq(side.as_str())))
}

/// The indexes hold `created_at` and `amount_cents` descending (newest and largest first), then
/// `id`: `-created_at` and `-amount` read a page straight from the index.
const fn sort_column(key: PositionSortKey) -> Column {
    match key {
        PositionSortKey::CreatedAt => Column::CreatedAt,
        PositionSortKey::Amount => Column::AmountCents,
    }
}

#[cfg(test)]
mod tests {
    use domain::listing::{PageRequest, PositionSort};
    use domain::{Side, UserId};
    use sea_orm::DbBackend;

    use super::*;

    #[test]
    fn a_listing_filters_sorts_then_breaks_ties_by_id() {
        let query = PositionListQuery {
            filter: PositionFilter {
                market_id: None,
                user_id: Some(UserId::from_uuid(Uuid::nil())),
                side: Some(Side::No),
            },
            sort: PositionSort::parse("-amount").expect("a valid sort"),
            page: PageRequest::new(10, 20).expect("a valid page"),
        };
        let statement = page(&query).build(DbBackend::Postgres).sql;
        assert!(
            statement.ends_with(
                r#"WHERE "positions"."user_id" = $1 AND "positions"."side" = $2 ORDER BY "positions"."amount_cents" DESC, "positions"."id" ASC LIMIT $3 OFFSET $4"#
            ),
            "{statement}"
        );
    }
}
