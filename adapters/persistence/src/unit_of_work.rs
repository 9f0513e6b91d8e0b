//! `SeaUnitOfWork`: transactions on the primary, with every repository bound to them.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::listing::PageRequest;
use domain::listing::{MarketListQuery, MarketProjection, Page, PositionListQuery, UserListQuery};
use domain::ports::{
    Claim, ClaimRequest, Enqueued, IdempotencyScope, IdempotencyStore, JobQueue, MarketRepository,
    Outbox, PositionRepository, RepositoryError, SessionRepository, StoredEvent, StoredResponse,
    Transaction, UnitOfWork, UserRepository,
};
use domain::{
    Amount, Email, Job, JobId, JobKind, JobState, Market, MarketId, NewJob, Position, PositionId,
    RecordedEvent, RefreshToken, RevokeReason, SecretDigest, Session, SessionId, User, UserId,
};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QuerySelect, TransactionTrait,
};

use crate::database::Database;
use crate::entity::{markets, outbox_events, users};
use crate::error::unavailable;
use crate::{
    idempotency_store, job_queue, mapper, market_repository, outbox, position_repository,
    session_repository, user_repository,
};

/// Begins transactions on the primary.
///
/// - On PostgreSQL a transaction is `READ COMMITTED`; `lock_user` and `lock_market` read with
///   `SELECT ... FOR UPDATE`, so transactions that lock the same row run one after the other.
/// - On SQLite a transaction starts with `BEGIN IMMEDIATE`: it holds the database's write lock
///   from its first statement, so transactions run one after the other and a read-then-write
///   transaction cannot fail with `SQLITE_BUSY` when it comes to write (which `busy_timeout` does
///   not retry: a deferred transaction that read first cannot wait for the lock without
///   deadlocking). `lock_user` and `lock_market` are then plain reads. While a transaction is
///   open, write only through its own repositories: a write on the pool waits for its write lock
///   (up to `busy_timeout`, then fails). Reads on the pool do not wait (WAL).
/// - Dropping a transaction without committing rolls it back (SeaORM's `DatabaseTransaction`
///   queues the `ROLLBACK` when dropped; the connection sends it before being reused).
/// - On PostgreSQL a failed statement aborts the whole transaction. Writes are built so that the
///   answers callers act on are not failed statements: `NotFound` and `Stale` are updates that
///   matched no row, a taken position id is `ON CONFLICT DO NOTHING`. A broken rule (a taken
///   email, a missing reference, a market that still has positions) is an error, and after it
///   the transaction can only be dropped, which is what every use case does (the port says so).
///   Savepoints, two more round trips each (`SAVEPOINT`, `RELEASE`), are kept only where a caller
///   goes on after a refusal: a user insert (the email is looked up after an id conflict) and
///   the job queue's `enqueue` and `retry` (a taken unique key is an answer, not a failure).
///   Dropping the others took an authenticated `POST /positions` from three savepoints
///   (six round trips) to none (performance.md, finding 10).
/// - Events recorded in the outbox are inserted at commit, just before it, without a lock:
///   readers wait at holes in the numbering instead (see [`crate::SeaOutbox`]).
/// - The transaction's `idempotency()` runs every method inside the transaction, `claim`
///   included: such a claim is seen by others only at commit. Claim with
///   [`crate::SeaIdempotencyStore`], as the port says, and `complete` in the transaction.
/// - The transaction's `jobs()` runs every method inside the transaction: an enqueued job exists
///   when it commits. `enqueue` and `retry` run in a savepoint on PostgreSQL (an id conflict or a
///   taken unique key must not abort the transaction); `fetch` there needs no `BEGIN IMMEDIATE`
///   on SQLite, the transaction holds the write lock already.
#[derive(Debug, Clone)]
pub struct SeaUnitOfWork {
    database: Database,
}

impl SeaUnitOfWork {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

#[async_trait]
impl UnitOfWork for SeaUnitOfWork {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepositoryError> {
        let transaction = crate::database::begin_writing(self.database.writer())
            .await
            .map_err(unavailable)?;
        Ok(Box::new(SeaTransaction {
            bound: Bound {
                transaction,
                events: Mutex::new(Vec::new()),
            },
        }))
    }
}

/// One transaction of [`SeaUnitOfWork`].
struct SeaTransaction {
    bound: Bound,
}

/// Every repository, bound to one transaction.
struct Bound {
    transaction: DatabaseTransaction,
    /// Outbox rows to insert at commit.
    events: Mutex<Vec<outbox_events::ActiveModel>>,
}

impl Bound {
    fn is_postgres(&self) -> bool {
        self.transaction.get_database_backend() == DbBackend::Postgres
    }

    /// A savepoint on PostgreSQL, where a failed statement would abort the transaction; none on
    /// SQLite, where it does not.
    async fn savepoint(&self) -> Result<Option<DatabaseTransaction>, RepositoryError> {
        if self.is_postgres() {
            self.transaction
                .begin()
                .await
                .map(Some)
                .map_err(unavailable)
        } else {
            Ok(None)
        }
    }

    /// Runs `write` in a savepoint (when needed): released when it succeeded, rolled back to
    /// otherwise.
    async fn guarded<T, W>(&self, write: W) -> Result<T, RepositoryError>
    where
        W: AsyncFnOnce(&DatabaseTransaction) -> Result<T, RepositoryError>,
    {
        let savepoint = self.savepoint().await?;
        let result = write(savepoint.as_ref().unwrap_or(&self.transaction)).await;
        if let Some(savepoint) = savepoint {
            if result.is_ok() {
                savepoint.commit().await.map_err(unavailable)?;
            } else {
                savepoint.rollback().await.map_err(unavailable)?;
            }
        }
        result
    }
}

#[async_trait]
impl Transaction for SeaTransaction {
    fn users(&self) -> &dyn UserRepository {
        &self.bound
    }

    fn markets(&self) -> &dyn MarketRepository {
        &self.bound
    }

    fn positions(&self) -> &dyn PositionRepository {
        &self.bound
    }

    fn outbox(&self) -> &dyn Outbox {
        &self.bound
    }

    fn idempotency(&self) -> &dyn IdempotencyStore {
        &self.bound
    }

    fn jobs(&self) -> &dyn JobQueue {
        &self.bound
    }

    fn sessions(&self) -> &dyn SessionRepository {
        &self.bound
    }

    async fn lock_user(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        let mut select = users::Entity::find_by_id(id.as_uuid());
        if self.bound.is_postgres() {
            select = select.lock_exclusive();
        }
        let row = select
            .one(&self.bound.transaction)
            .await
            .map_err(unavailable)?;
        Ok(row.map(mapper::user::to_domain).transpose()?)
    }

    async fn lock_market(&self, id: MarketId) -> Result<Option<Market>, RepositoryError> {
        let mut select = markets::Entity::find_by_id(id.as_uuid());
        if self.bound.is_postgres() {
            select = select.lock_exclusive();
        }
        let row = select
            .one(&self.bound.transaction)
            .await
            .map_err(unavailable)?;
        Ok(row.map(mapper::market::to_domain).transpose()?)
    }

    async fn commit(self: Box<Self>) -> Result<(), RepositoryError> {
        let Bound {
            transaction,
            events,
        } = self.bound;
        let events = events.into_inner().unwrap_or_else(PoisonError::into_inner);
        // On failure the transaction is dropped, and so rolled back: nothing was written.
        outbox::insert(&transaction, events).await?;
        transaction.commit().await.map_err(unavailable)
    }
}

#[async_trait]
impl UserRepository for Bound {
    async fn insert(&self, user: &User) -> Result<(), RepositoryError> {
        let inserted = self
            .guarded(async |connection| user_repository::insert_row(connection, user).await)
            .await;
        // After the savepoint: the look-up runs in a transaction that is not aborted.
        user_repository::email_before_id(&self.transaction, user, inserted).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        user_repository::find_by_id(&self.transaction, id).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError> {
        user_repository::find_by_email(&self.transaction, email).await
    }

    async fn find_many(&self, ids: &[UserId]) -> Result<Vec<User>, RepositoryError> {
        user_repository::find_many(&self.transaction, ids).await
    }

    async fn update(&self, user: &User) -> Result<(), RepositoryError> {
        user_repository::update(&self.transaction, user).await
    }

    async fn list(&self, query: &UserListQuery) -> Result<Page<User>, RepositoryError> {
        user_repository::list(&self.transaction, query).await
    }

    async fn delete(&self, id: UserId) -> Result<(), RepositoryError> {
        user_repository::delete(&self.transaction, id).await
    }
}

#[async_trait]
impl SessionRepository for Bound {
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        session_repository::insert(&self.transaction, session).await
    }

    async fn find(&self, id: SessionId) -> Result<Option<Session>, RepositoryError> {
        session_repository::find(&self.transaction, id).await
    }

    async fn find_by_secret(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<Session>, RepositoryError> {
        session_repository::find_by_secret(&self.transaction, digest).await
    }

    async fn list_active(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Session>, RepositoryError> {
        session_repository::list_active(&self.transaction, user, now, limit).await
    }

    async fn touch(&self, session: &Session) -> Result<bool, RepositoryError> {
        session_repository::touch(&self.transaction, session).await
    }

    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        session_repository::revoke(&self.transaction, id, reason, now).await
    }

    async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        session_repository::revoke_all(&self.transaction, user, keep, reason, now).await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), RepositoryError> {
        session_repository::insert_refresh_token(&self.transaction, token).await
    }

    async fn find_refresh_token(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<RefreshToken>, RepositoryError> {
        session_repository::find_refresh_token(&self.transaction, digest).await
    }

    async fn use_refresh_token(
        &self,
        digest: &SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        session_repository::use_refresh_token(&self.transaction, digest, now).await
    }
}

#[async_trait]
impl MarketRepository for Bound {
    async fn insert(&self, market: &Market) -> Result<(), RepositoryError> {
        market_repository::insert(&self.transaction, market).await
    }

    async fn find_by_id(&self, id: MarketId) -> Result<Option<Market>, RepositoryError> {
        market_repository::find_by_id(&self.transaction, id).await
    }

    async fn find_many(&self, ids: &[MarketId]) -> Result<Vec<Market>, RepositoryError> {
        market_repository::find_many(&self.transaction, ids).await
    }

    async fn list(
        &self,
        query: &MarketListQuery,
    ) -> Result<Page<MarketProjection>, RepositoryError> {
        market_repository::list(&self.transaction, query).await
    }

    async fn update(&self, market: &Market, expected_version: i64) -> Result<(), RepositoryError> {
        market_repository::update(&self.transaction, market, expected_version).await
    }

    async fn delete(&self, id: MarketId, expected_version: i64) -> Result<(), RepositoryError> {
        market_repository::delete(&self.transaction, id, expected_version).await
    }
}

#[async_trait]
impl PositionRepository for Bound {
    async fn insert(&self, position: &Position) -> Result<(), RepositoryError> {
        let inserted = position_repository::insert_row(&self.transaction, position).await;
        position_repository::name_reference(&self.transaction, position, inserted).await
    }

    async fn list(&self, query: &PositionListQuery) -> Result<Page<Position>, RepositoryError> {
        position_repository::list(&self.transaction, query).await
    }

    async fn unsettled(
        &self,
        market: MarketId,
        limit: u64,
    ) -> Result<Vec<Position>, RepositoryError> {
        position_repository::unsettled(&self.transaction, market, limit).await
    }

    async fn record_payout(&self, id: PositionId, payout: Amount) -> Result<bool, RepositoryError> {
        // An update no constraint can refuse: no savepoint needed.
        position_repository::record_payout(&self.transaction, id, payout).await
    }
}

#[async_trait]
impl Outbox for Bound {
    /// Keeps the event for the commit (checking now that it can be stored).
    async fn record(&self, event: &RecordedEvent) -> Result<(), RepositoryError> {
        let row = outbox::to_active_model(event)?;
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(row);
        Ok(())
    }

    /// Committed events only: this transaction's own are inserted at its commit.
    async fn after(&self, after: i64, limit: u64) -> Result<Vec<StoredEvent>, RepositoryError> {
        // A hole seen inside one transaction is never passed: its snapshot cannot change.
        outbox::after(&self.transaction, after, limit, &Mutex::new(None)).await
    }
}

#[async_trait]
impl IdempotencyStore for Bound {
    /// Claims inside this transaction: others see the claim only when it commits.
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, RepositoryError> {
        idempotency_store::claim(&self.transaction, request).await
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        response: &StoredResponse,
    ) -> Result<(), RepositoryError> {
        idempotency_store::complete(&self.transaction, scope, response).await
    }

    async fn release(&self, scope: &IdempotencyScope) -> Result<(), RepositoryError> {
        idempotency_store::release(&self.transaction, scope).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        idempotency_store::purge_expired(&self.transaction, now).await
    }
}

#[async_trait]
impl JobQueue for Bound {
    /// Inside the transaction: the job exists when (and only if) the transaction commits.
    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, RepositoryError> {
        self.guarded(async |connection| job_queue::enqueue(connection, job).await)
            .await
    }

    async fn fetch(
        &self,
        worker: &str,
        kinds: &[JobKind],
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Job>, RepositoryError> {
        job_queue::fetch(&self.transaction, worker, kinds, limit, now, lease_until).await
    }

    async fn heartbeat(
        &self,
        ids: &[JobId],
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<JobId>, RepositoryError> {
        job_queue::heartbeat(&self.transaction, ids, worker, lease_until).await
    }

    async fn complete(
        &self,
        id: JobId,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        job_queue::complete(&self.transaction, id, worker, now).await
    }

    async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<JobState>, RepositoryError> {
        job_queue::fail(&self.transaction, id, worker, error, retry_at, now).await
    }

    async fn release(&self, ids: &[JobId], worker: &str) -> Result<u64, RepositoryError> {
        job_queue::release(&self.transaction, ids, worker).await
    }

    async fn find(&self, id: JobId) -> Result<Option<Job>, RepositoryError> {
        job_queue::find(&self.transaction, id).await
    }

    async fn list(
        &self,
        state: Option<JobState>,
        page: PageRequest,
    ) -> Result<Page<Job>, RepositoryError> {
        job_queue::list(&self.transaction, state, page).await
    }

    async fn oldest_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        job_queue::oldest_due(&self.transaction, now).await
    }

    async fn retry(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, RepositoryError> {
        self.guarded(async |connection| job_queue::retry(connection, id, now).await)
            .await
    }
}
