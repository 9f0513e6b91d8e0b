//! `SeaJobQueue`: the `JobQueue` port over the `jobs` table, claimed with `FOR UPDATE SKIP LOCKED` (PostgreSQL) or under `BEGIN IMMEDIATE` (SQLite).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::listing::{Page, PageRequest};
use domain::ports::{Enqueued, JobQueue, RepositoryError};
use domain::{Job, JobId, JobKind, JobState, NewJob};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, SqlErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use uuid::Uuid;

use crate::database::Database;
use crate::entity::jobs::{self, Column, Entity};
use crate::error::unavailable;
use crate::listing::{self, TOTAL};
use crate::mapper::{self, stored};

const AVAILABLE: &str = "available";
const RUNNING: &str = "running";
const SUCCEEDED: &str = "succeeded";
const DEAD: &str = "dead";

/// What `last_error` says of a job whose lease ran out on its last attempt.
const LEASE_EXPIRED: &str = "the worker's lease expired on the last attempt";

/// How many times `enqueue` tries again when the live job holding its unique key finished
/// between the insert and the look-up.
const ENQUEUE_ATTEMPTS: usize = 3;

/// The job queue in PostgreSQL or SQLite, on the primary.
///
/// - `fetch` is one `UPDATE jobs ... WHERE id IN (SELECT id ... ORDER BY priority, run_at, id
///   LIMIT n) RETURNING *`. On PostgreSQL the sub-select takes `FOR UPDATE SKIP LOCKED`, so
///   concurrent fetchers skip each other's rows instead of waiting or sharing them. SQLite has no
///   row locks: the statement runs in a `BEGIN IMMEDIATE` transaction, which takes the database
///   write lock before reading, so fetchers run one after the other (and never fail with
///   `SQLITE_BUSY_SNAPSHOT` halfway, as a read-then-write autocommit statement could in WAL mode).
/// - `enqueue` is `INSERT ... ON CONFLICT (unique_key) WHERE <live> DO NOTHING` against the
///   partial unique index `ux_jobs_unique_key_live`: a duplicate is not an error, so it needs no
///   savepoint inside a PostgreSQL transaction.
/// - `complete`, `fail`, `heartbeat` and `release` are conditional updates (`state = 'running'
///   AND worker = $worker`), so a worker that lost its job changes nothing.
#[derive(Debug, Clone)]
pub struct SeaJobQueue {
    database: Database,
}

impl SeaJobQueue {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

#[async_trait]
impl JobQueue for SeaJobQueue {
    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, RepositoryError> {
        enqueue(self.database.writer(), job).await
    }

    async fn fetch(
        &self,
        worker: &str,
        kinds: &[JobKind],
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Job>, RepositoryError> {
        let writer = self.database.writer();
        if writer.get_database_backend() != DbBackend::Sqlite {
            return fetch(writer, worker, kinds, limit, now, lease_until).await;
        }
        let transaction = writer
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(unavailable)?;
        let claimed = fetch(&transaction, worker, kinds, limit, now, lease_until).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(claimed)
    }

    async fn heartbeat(
        &self,
        ids: &[JobId],
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<JobId>, RepositoryError> {
        heartbeat(self.database.writer(), ids, worker, lease_until).await
    }

    async fn complete(
        &self,
        id: JobId,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        complete(self.database.writer(), id, worker, now).await
    }

    async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<JobState>, RepositoryError> {
        fail(self.database.writer(), id, worker, error, retry_at, now).await
    }

    async fn release(&self, ids: &[JobId], worker: &str) -> Result<u64, RepositoryError> {
        release(self.database.writer(), ids, worker).await
    }

    async fn find(&self, id: JobId) -> Result<Option<Job>, RepositoryError> {
        find(self.database.writer(), id).await
    }

    async fn list(
        &self,
        state: Option<JobState>,
        page: PageRequest,
    ) -> Result<Page<Job>, RepositoryError> {
        list(self.database.writer(), state, page).await
    }

    async fn oldest_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        oldest_due(self.database.writer(), now).await
    }

    async fn retry(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, RepositoryError> {
        retry(self.database.writer(), id, now).await
    }
}

/// The smallest `run_at` of the due available jobs, read on `connection` (per priority, the
/// fetch index `ix_jobs_state_priority_run_at` answers it).
pub(crate) async fn oldest_due<C: ConnectionTrait>(
    connection: &C,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, RepositoryError> {
    Entity::find()
        .select_only()
        .column(Column::RunAt)
        .filter(Column::State.eq(AVAILABLE))
        .filter(Column::RunAt.lte(stored(now)))
        .order_by_asc(Column::RunAt)
        .limit(1)
        .into_tuple::<DateTime<Utc>>()
        .one(connection)
        .await
        .map_err(unavailable)
}

/// The predicate of the partial unique index `ux_jobs_unique_key_live`, word for word and with
/// literals, not bound parameters: an `ON CONFLICT` target must carry the index's predicate for
/// the database to pick the index, and neither PostgreSQL nor SQLite sees through parameters.
const LIVE_WITH_KEY: &str = "unique_key IS NOT NULL AND state NOT IN ('succeeded', 'dead')";

/// Running for `worker`.
fn held_by(worker: &str) -> Condition {
    Condition::all()
        .add(Column::State.eq(RUNNING))
        .add(Column::Worker.eq(worker))
}

fn uuids(ids: &[JobId]) -> Vec<Uuid> {
    ids.iter().map(JobId::as_uuid).collect()
}

fn kind_names(kinds: &[JobKind]) -> Vec<String> {
    kinds.iter().map(|kind| kind.as_str().to_owned()).collect()
}

fn rows_to_jobs(rows: Vec<jobs::Model>) -> Result<Vec<Job>, RepositoryError> {
    rows.into_iter()
        .map(|row| mapper::job::to_domain(row).map_err(RepositoryError::from))
        .collect()
}

pub(crate) async fn enqueue<C: ConnectionTrait>(
    connection: &C,
    job: &NewJob,
) -> Result<Enqueued, RepositoryError> {
    for _ in 0..ENQUEUE_ATTEMPTS {
        let insert = Entity::insert(mapper::job::to_active_model(job))
            .on_conflict(
                OnConflict::column(Column::UniqueKey)
                    .target_and_where(Expr::cust(LIVE_WITH_KEY))
                    .do_nothing()
                    .to_owned(),
            )
            .into_query();
        let inserted = connection
            .execute(&insert)
            .await
            .map_err(|error| conflict_or_unavailable(error, "id"))?;
        if inserted.rows_affected() > 0 {
            return Ok(Enqueued::Created(job.id()));
        }
        let live: Option<Uuid> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::UniqueKey.eq(job.unique_key()))
            .filter(Column::State.is_in([AVAILABLE, RUNNING]))
            .into_tuple()
            .one(connection)
            .await
            .map_err(unavailable)?;
        match live.map(JobId::from_uuid) {
            // The insert met this very job: an id conflict, as without a unique key.
            Some(live) if live == job.id() => return Err(RepositoryError::Conflict("id")),
            Some(live) => return Ok(Enqueued::Duplicate(live)),
            None => {}
        }
        // The live job finished since the insert: try again.
    }
    Err(RepositoryError::Unavailable(
        "the unique key of the job keeps changing hands".into(),
    ))
}

/// A unique violation as [`RepositoryError::Conflict`]`(field)`, anything else as unavailable.
fn conflict_or_unavailable(error: DbErr, field: &'static str) -> RepositoryError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => RepositoryError::Conflict(field),
        _ => unavailable(error),
    }
}

/// Claims jobs on `connection` (see [`SeaJobQueue`]): first makes the exhausted ones whose lease
/// ended dead, then claims the due ones.
pub(crate) async fn fetch<C: ConnectionTrait>(
    connection: &C,
    worker: &str,
    kinds: &[JobKind],
    limit: u32,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Job>, RepositoryError> {
    if kinds.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let now = stored(now);
    let kinds = kind_names(kinds);
    let lease_ended = || {
        Condition::all()
            .add(Column::State.eq(RUNNING))
            .add(Column::LeaseUntil.lt(now))
    };
    Entity::update_many()
        .col_expr(Column::State, Expr::value(DEAD))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LastError, Expr::value(LEASE_EXPIRED))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Kind.is_in(kinds.clone()))
        .filter(lease_ended())
        .filter(Expr::col(Column::Attempts).gte(Expr::col(Column::MaxAttempts)))
        .exec(connection)
        .await
        .map_err(unavailable)?;

    let due = Condition::any()
        .add(
            Condition::all()
                .add(Column::State.eq(AVAILABLE))
                .add(Column::RunAt.lte(now)),
        )
        .add(lease_ended().add(Expr::col(Column::Attempts).lt(Expr::col(Column::MaxAttempts))));
    let mut chosen = Query::select();
    chosen
        .column(Column::Id)
        .from(Entity)
        .cond_where(Condition::all().add(Column::Kind.is_in(kinds)).add(due))
        .order_by(Column::Priority, Order::Asc)
        .order_by(Column::RunAt, Order::Asc)
        .order_by(Column::Id, Order::Asc)
        .limit(u64::from(limit));
    if connection.get_database_backend() == DbBackend::Postgres {
        chosen.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = Entity::update_many()
        .col_expr(Column::State, Expr::value(RUNNING))
        .col_expr(Column::Worker, Expr::value(worker))
        .col_expr(Column::LeaseUntil, Expr::value(stored(lease_until)))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.in_subquery(chosen))
        .exec_with_returning(connection)
        .await
        .map_err(unavailable)?;
    let mut claimed = rows_to_jobs(rows)?;
    // `RETURNING` keeps no order.
    claimed.sort_by_key(|job| (job.priority, job.run_at, job.id));
    Ok(claimed)
}

pub(crate) async fn heartbeat<C: ConnectionTrait>(
    connection: &C,
    ids: &[JobId],
    worker: &str,
    lease_until: DateTime<Utc>,
) -> Result<Vec<JobId>, RepositoryError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = Entity::update_many()
        .col_expr(Column::LeaseUntil, Expr::value(stored(lease_until)))
        .filter(Column::Id.is_in(uuids(ids)))
        .filter(held_by(worker))
        .exec_with_returning(connection)
        .await
        .map_err(unavailable)?;
    let mut held: Vec<JobId> = rows
        .into_iter()
        .map(|row| JobId::from_uuid(row.id))
        .collect();
    held.sort();
    Ok(held)
}

pub(crate) async fn complete<C: ConnectionTrait>(
    connection: &C,
    id: JobId,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<bool, RepositoryError> {
    let result = Entity::update_many()
        .col_expr(Column::State, Expr::value(SUCCEEDED))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::UpdatedAt, Expr::value(stored(now)))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(held_by(worker))
        .exec(connection)
        .await
        .map_err(unavailable)?;
    Ok(result.rows_affected > 0)
}

pub(crate) async fn fail<C: ConnectionTrait>(
    connection: &C,
    id: JobId,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<JobState>, RepositoryError> {
    let Some(row) = Entity::find_by_id(id.as_uuid())
        .filter(held_by(worker))
        .one(connection)
        .await
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let retry_at = retry_at.filter(|_| row.attempts < row.max_attempts);
    let (state, run_at) = match retry_at {
        Some(retry_at) => (JobState::Available, stored(retry_at)),
        None => (JobState::Dead, row.run_at),
    };
    // Only if nobody took the job over since it was read (the attempt count would differ).
    let result = Entity::update_many()
        .col_expr(Column::State, Expr::value(state.as_str()))
        .col_expr(Column::RunAt, Expr::value(run_at))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LastError, Expr::value(Job::truncate_error(error)))
        .col_expr(Column::UpdatedAt, Expr::value(stored(now)))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(held_by(worker))
        .filter(Column::Attempts.eq(row.attempts))
        .exec(connection)
        .await
        .map_err(unavailable)?;
    Ok((result.rows_affected > 0).then_some(state))
}

pub(crate) async fn release<C: ConnectionTrait>(
    connection: &C,
    ids: &[JobId],
    worker: &str,
) -> Result<u64, RepositoryError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = Entity::update_many()
        .col_expr(Column::State, Expr::value(AVAILABLE))
        .col_expr(Column::Worker, Expr::value(Option::<String>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).sub(1))
        .filter(Column::Id.is_in(uuids(ids)))
        .filter(held_by(worker))
        .exec(connection)
        .await
        .map_err(unavailable)?;
    Ok(result.rows_affected)
}

pub(crate) async fn find<C: ConnectionTrait>(
    connection: &C,
    id: JobId,
) -> Result<Option<Job>, RepositoryError> {
    let row = Entity::find_by_id(id.as_uuid())
        .one(connection)
        .await
        .map_err(unavailable)?;
    Ok(row.map(mapper::job::to_domain).transpose()?)
}

pub(crate) async fn list<C: ConnectionTrait>(
    connection: &C,
    state: Option<JobState>,
    page: PageRequest,
) -> Result<Page<Job>, RepositoryError> {
    let in_state = || match state {
        Some(state) => Condition::all().add(Column::State.eq(state.as_str())),
        None => Condition::all(),
    };
    let select = Entity::find()
        .filter(in_state())
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id);
    let rows = listing::window(select, page)
        .all(connection)
        .await
        .map_err(unavailable)?;
    let items = rows_to_jobs(rows)?;
    let total = match listing::total_from_page(page, items.len()) {
        Some(total) => total,
        None => {
            let count = Query::select()
                .expr_as(Expr::col(Column::Id).count(), TOTAL)
                .from(Entity)
                .cond_where(in_state())
                .to_owned();
            listing::count(connection, &count).await?
        }
    };
    Ok(Page {
        items,
        total,
        request: page,
    })
}

pub(crate) async fn retry<C: ConnectionTrait>(
    connection: &C,
    id: JobId,
    now: DateTime<Utc>,
) -> Result<bool, RepositoryError> {
    let now = stored(now);
    let result = Entity::update_many()
        .col_expr(Column::State, Expr::value(AVAILABLE))
        .col_expr(Column::Attempts, Expr::value(0))
        .col_expr(Column::RunAt, Expr::value(now))
        .col_expr(Column::Worker, Expr::value(Option::<String>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id.as_uuid()))
        .filter(Column::State.eq(DEAD))
        .exec(connection)
        .await
        .map_err(|error| conflict_or_unavailable(error, "unique_key"))?;
    Ok(result.rows_affected > 0)
}
