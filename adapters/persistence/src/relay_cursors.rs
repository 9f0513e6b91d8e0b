//! `SeaRelayCursors`: the `RelayCursors` port over the `relay_cursors` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{RelayCursors, RepositoryError};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait};

use crate::database::Database;
use crate::entity::relay_cursors::{self, Column, Entity};
use crate::error::unavailable;

/// Relay cursors in PostgreSQL or SQLite, on the primary. Taking a lease is one conditional
/// upsert, so two relays racing for it cannot both win.
#[derive(Debug, Clone)]
pub struct SeaRelayCursors {
    database: Database,
}

impl SeaRelayCursors {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

#[async_trait]
impl RelayCursors for SeaRelayCursors {
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<i64>, RepositoryError> {
        let writer = self.database.writer();
        let row = relay_cursors::ActiveModel {
            name: Set(name.to_owned()),
            position: Set(0),
            holder: Set(holder.to_owned()),
            lease_until: Set(until),
        };
        // Insert a new cursor, or take over one whose lease is ours or has run out.
        let upsert = Entity::insert(row)
            .on_conflict(
                OnConflict::column(Column::Name)
                    .update_columns([Column::Holder, Column::LeaseUntil])
                    .action_and_where(
                        Expr::col((Entity, Column::Holder))
                            .eq(holder)
                            .or(Expr::col((Entity, Column::LeaseUntil)).lt(now)),
                    )
                    .to_owned(),
            )
            .into_query();
        let taken = writer.execute(&upsert).await.map_err(unavailable)?;
        if taken.rows_affected() == 0 {
            return Ok(None);
        }
        let cursor = Entity::find_by_id(name.to_owned())
            .filter(Column::Holder.eq(holder))
            .one(writer)
            .await
            .map_err(unavailable)?;
        Ok(cursor.map(|cursor| cursor.position))
    }

    async fn advance(
        &self,
        name: &str,
        holder: &str,
        position: i64,
    ) -> Result<bool, RepositoryError> {
        let result = Entity::update_many()
            .col_expr(Column::Position, Expr::value(position))
            .filter(Column::Name.eq(name))
            .filter(Column::Holder.eq(holder))
            .filter(Column::Position.lte(position))
            .exec(self.database.writer())
            .await
            .map_err(unavailable)?;
        Ok(result.rows_affected > 0)
    }
}
