//! `SeaOutbox`: the `Outbox` port over the `outbox_events` table, numbered in commit order.

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::ports::{Outbox, RepositoryError, StoredEvent};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Func, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use uuid::Uuid;

use crate::database::Database;
use crate::entity::outbox_events::{self, Column};
use crate::error::{CorruptRow, unavailable};
use crate::mapper::stored;

/// A number naming the PostgreSQL advisory lock that orders outbox writers.
const OUTBOX_LOCK: i64 = 0x0000_6f75_7462_6f78; // "outbox" in ASCII

/// The outbox in PostgreSQL or SQLite. Everything runs on the primary: a relay must not read a
/// lagging replica.
///
/// `sequence` is assigned when an event is inserted, but the port promises commit order (a relay
/// resumes after the last sequence it published, so an event committed later with a smaller
/// sequence would be skipped). Writers therefore insert events one transaction at a time: on
/// PostgreSQL under a transaction-scoped advisory lock taken just before the insert and held to
/// the commit; on SQLite the database write lock already does it. The unit of work inserts its
/// events at commit, so that the lock is held only for that insert and the commit.
#[derive(Debug, Clone)]
pub struct SeaOutbox {
    database: Database,
}

impl SeaOutbox {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

#[async_trait]
impl Outbox for SeaOutbox {
    /// Records `event` at once, in a short transaction of its own.
    async fn record(&self, event: &RecordedEvent) -> Result<(), RepositoryError> {
        let row = to_active_model(event)?;
        let writer = self.database.writer();
        if writer.get_database_backend() == DbBackend::Postgres {
            let transaction = sea_orm::TransactionTrait::begin(writer)
                .await
                .map_err(unavailable)?;
            insert(&transaction, vec![row]).await?;
            transaction.commit().await.map_err(unavailable)
        } else {
            insert(writer, vec![row]).await
        }
    }

    async fn after(&self, after: i64, limit: u64) -> Result<Vec<StoredEvent>, RepositoryError> {
        self::after(self.database.writer(), after, limit).await
    }
}

/// The row that stores `event`: its JSON, with its type and time beside it for people and
/// indexes. `sequence` and `recorded_at` come from the database.
///
/// # Errors
/// [`RepositoryError::Unavailable`] if the event cannot be serialised (it always can).
pub(crate) fn to_active_model(
    event: &RecordedEvent,
) -> Result<outbox_events::ActiveModel, RepositoryError> {
    let payload =
        serde_json::to_string(event).map_err(|error| RepositoryError::Unavailable(error.into()))?;
    Ok(outbox_events::ActiveModel {
        sequence: NotSet,
        id: Set(event.id.as_uuid()),
        event_type: Set(event.event.name().to_owned()),
        payload: Set(payload),
        occurred_at: Set(stored(event.occurred_at)),
        recorded_at: NotSet,
    })
}

/// Inserts `rows` on `connection`, inside a transaction: on PostgreSQL it first takes the outbox
/// lock, held until that transaction ends, so that sequences are assigned in commit order.
pub(crate) async fn insert<C: ConnectionTrait>(
    connection: &C,
    rows: Vec<outbox_events::ActiveModel>,
) -> Result<(), RepositoryError> {
    if rows.is_empty() {
        return Ok(());
    }
    if connection.get_database_backend() == DbBackend::Postgres {
        let lock = Query::select()
            .expr(Func::cust("pg_advisory_xact_lock").arg(OUTBOX_LOCK))
            .to_owned();
        connection.query_one(&lock).await.map_err(unavailable)?;
    }
    outbox_events::Entity::insert_many(rows)
        .exec_without_returning(connection)
        .await
        .map(|_| ())
        .map_err(unavailable)
}

/// Up to `limit` events with a sequence above `after`, oldest first, read on `connection`.
pub(crate) async fn after<C: ConnectionTrait>(
    connection: &C,
    after: i64,
    limit: u64,
) -> Result<Vec<StoredEvent>, RepositoryError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, Uuid, String)> = outbox_events::Entity::find()
        .select_only()
        .columns([Column::Sequence, Column::Id, Column::Payload])
        .filter(Column::Sequence.gt(after))
        .order_by_asc(Column::Sequence)
        .limit(limit.min(i64::MAX.unsigned_abs()))
        .into_tuple()
        .all(connection)
        .await
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|(sequence, id, payload)| {
            let event = serde_json::from_str(&payload).map_err(CorruptRow::at(
                "outbox_events",
                id,
                "payload",
            ))?;
            Ok(StoredEvent { sequence, event })
        })
        .collect()
}
