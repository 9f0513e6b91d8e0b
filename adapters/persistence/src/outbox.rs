//! `SeaOutbox`: the `Outbox` port over the `outbox_events` table, read in sequence order without ever passing a number that a transaction still running may commit.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::ports::{Outbox, RepositoryError, StoredEvent};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};

use uuid::Uuid;

use crate::database::Database;
use crate::entity::outbox_events::{self, Column};
use crate::error::{CorruptRow, unavailable};
use crate::mapper::stored;

/// The outbox in PostgreSQL or SQLite. Everything runs on the primary: a relay must not read a
/// lagging replica.
///
/// `sequence` is taken when an event is inserted (the unit of work inserts its events at commit),
/// so on PostgreSQL two transactions may commit in the other order than they took their numbers:
/// a reader can see 8 while 7 is still being committed. Writers take no lock for that (a lock held
/// through every commit's flush would serialise all of them); instead [`Outbox::after`] never
/// returns an event past a hole in the numbers until the hole is settled: it notes the hole with
/// the horizon of a snapshot taken after seeing it (`pg_snapshot_xmax`: every transaction that had
/// an id by then is below it), and passes the hole once the oldest transaction still running
/// (`pg_snapshot_xmin`) is past that horizon: the holder has committed (its event is then read)
/// or rolled back (the number is lost for good). On SQLite writers run one at a time, and numbers
/// are visible in order.
#[derive(Debug, Clone)]
pub struct SeaOutbox {
    database: Database,
    hole: Arc<Mutex<Option<Hole>>>,
}

/// Missing sequence numbers seen by a reader: from `first` up to the next event it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hole {
    first: i64,
    /// `pg_snapshot_xmax` of a snapshot taken after the hole was seen.
    horizon: i64,
    /// When it was first seen.
    seen_at: Instant,
}

/// A hole is passed after this long even if an older transaction of the cluster (in any
/// database: the horizon is cluster-wide) is still running, so that one long transaction
/// elsewhere cannot stall the relay. The cost: an event whose commit takes longer than this after
/// its insert (a stalled synchronous replica, say) would be skipped; it is logged.
const HOLE_TIMEOUT: Duration = Duration::from_secs(30);

impl SeaOutbox {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self {
            database,
            hole: Arc::default(),
        }
    }
}

#[async_trait]
impl Outbox for SeaOutbox {
    /// Records `event` at once, in a statement of its own.
    async fn record(&self, event: &RecordedEvent) -> Result<(), RepositoryError> {
        insert(self.database.writer(), vec![to_active_model(event)?]).await
    }

    async fn after(&self, after: i64, limit: u64) -> Result<Vec<StoredEvent>, RepositoryError> {
        self::after(self.database.writer(), after, limit, &self.hole).await
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

/// Inserts `rows` on `connection` (the unit of work does it at commit).
pub(crate) async fn insert<C: ConnectionTrait>(
    connection: &C,
    rows: Vec<outbox_events::ActiveModel>,
) -> Result<(), RepositoryError> {
    if rows.is_empty() {
        return Ok(());
    }
    outbox_events::Entity::insert_many(rows)
        .exec_without_returning(connection)
        .await
        .map(|_| ())
        .map_err(unavailable)
}

/// Up to `limit` events with a sequence above `after`, oldest first, read on `connection`,
/// stopping before a hole in the sequence that may still be filled (see [`SeaOutbox`]); `hole`
/// remembers the hole between calls.
pub(crate) async fn after<C: ConnectionTrait>(
    connection: &C,
    after: i64,
    limit: u64,
    hole: &Mutex<Option<Hole>>,
) -> Result<Vec<StoredEvent>, RepositoryError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let postgres = connection.get_database_backend() == DbBackend::Postgres;
    // Sequences start at 1.
    let mut next = after.saturating_add(1).max(1);
    let known =
        (*hole.lock().unwrap_or_else(PoisonError::into_inner)).filter(|hole| hole.first == next);
    // Read before the events: every transaction below this had ended before they were read.
    let oldest_running = match known {
        Some(_) if postgres => Some(snapshot_bound(connection, "pg_snapshot_xmin").await?),
        _ => None,
    };
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
    let mut events = Vec::with_capacity(rows.len());
    for (sequence, id, payload) in rows {
        if postgres && sequence != next {
            let settled = match (known, oldest_running) {
                (Some(known), Some(oldest)) if known.first == next => {
                    let timed_out = known.seen_at.elapsed() >= HOLE_TIMEOUT;
                    if timed_out && oldest < known.horizon {
                        tracing::warn!(
                            first = next,
                            next = sequence,
                            "passing a hole in the outbox sequence after {HOLE_TIMEOUT:?} although an older transaction is still running"
                        );
                    }
                    oldest >= known.horizon || timed_out
                }
                _ => false,
            };
            if !settled {
                if known.is_none_or(|known| known.first != next) {
                    let horizon = snapshot_bound(connection, "pg_snapshot_xmax").await?;
                    *hole.lock().unwrap_or_else(PoisonError::into_inner) = Some(Hole {
                        first: next,
                        horizon,
                        seen_at: Instant::now(),
                    });
                }
                return Ok(events);
            }
        }
        let event = serde_json::from_str(&payload).map_err(CorruptRow::at(
            "outbox_events",
            id,
            "payload",
        ))?;
        events.push(StoredEvent { sequence, event });
        next = sequence.saturating_add(1);
    }
    Ok(events)
}

/// `pg_snapshot_xmin` or `pg_snapshot_xmax` of a snapshot taken now, as a number.
async fn snapshot_bound<C: ConnectionTrait>(
    connection: &C,
    function: &str,
) -> Result<i64, RepositoryError> {
    let statement = Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT {function}(pg_current_snapshot())::text::bigint"),
    );
    let row = connection
        .query_one_raw(statement)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| RepositoryError::Unavailable("no snapshot".into()))?;
    row.try_get_by_index::<i64>(0).map_err(unavailable)
}
