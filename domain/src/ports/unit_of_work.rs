//! The unit of work: several writes that commit together or not at all, and the stores that only
//! make sense inside one (positions, the event outbox, idempotency records).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::JobQueue;
use super::repository::{MarketRepository, RepositoryError, UserRepository};
use super::sessions::SessionRepository;
use crate::event::RecordedEvent;
use crate::id::{MarketId, PositionId, UserId};
use crate::listing::{Page, PositionListQuery};
use crate::market::Market;
use crate::money::Amount;
use crate::position::Position;
use crate::user::User;

/// Begins transactions.
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// A new transaction. Dropping it without [`Transaction::commit`] rolls every write back.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot start one.
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepositoryError>;
}

/// One transaction: repositories bound to it, row locks, and commit.
///
/// Implementations MUST make concurrent transactions that lock the same rows run one after the
/// other (row locks on PostgreSQL, the database write lock on SQLite, a mutex in memory), and MUST
/// make a dropped, uncommitted transaction leave no trace.
///
/// After a write returns an error, callers drop the transaction (some stores, PostgreSQL, cannot
/// run another statement in it), except after `users().insert` and `jobs().enqueue`/`retry`,
/// whose refusals (`Conflict`, a duplicate job) leave the transaction usable.
#[async_trait]
pub trait Transaction: Send + Sync {
    fn users(&self) -> &dyn UserRepository;
    fn markets(&self) -> &dyn MarketRepository;
    fn positions(&self) -> &dyn PositionRepository;
    fn outbox(&self) -> &dyn Outbox;
    fn idempotency(&self) -> &dyn IdempotencyStore;
    /// The job queue inside this transaction: a job enqueued here exists exactly when the
    /// transaction commits (with the change that asked for it), and not at all otherwise.
    fn jobs(&self) -> &dyn JobQueue;
    fn sessions(&self) -> &dyn SessionRepository;

    /// Reads a user and holds it until the end of the transaction: no other transaction can
    /// change it meanwhile.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn lock_user(&self, id: UserId) -> Result<Option<User>, RepositoryError>;

    /// Reads a market and holds it until the end of the transaction.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn lock_market(&self, id: MarketId) -> Result<Option<Market>, RepositoryError>;

    /// Makes every write of the transaction durable and visible, at once.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the commit fails; then nothing was written.
    async fn commit(self: Box<Self>) -> Result<(), RepositoryError>;
}

/// Positions by market or by user.
#[async_trait]
pub trait PositionRepository: Send + Sync {
    /// Stores a new position.
    ///
    /// # Errors
    /// - [`RepositoryError::Conflict`]`("id")` when the id exists already;
    /// - [`RepositoryError::Conflict`]`("market_id")` / `("user_id")` when the market or the user
    ///   does not exist;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn insert(&self, position: &Position) -> Result<(), RepositoryError>;

    /// One page of the positions matching `query.filter`, in `query.sort` order with ties broken
    /// by id ascending, and the total number of matches.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn list(&self, query: &PositionListQuery) -> Result<Page<Position>, RepositoryError>;

    /// Up to `limit` positions of `market` not settled yet (no `payout`), by id ascending.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn unsettled(
        &self,
        market: MarketId,
        limit: u64,
    ) -> Result<Vec<Position>, RepositoryError>;

    /// Records the payout of a position that has none yet. Returns `false`, changing nothing,
    /// when the position does not exist or was settled already (by a concurrent settlement), so
    /// that a caller credits the holder only when this call returned `true`.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn record_payout(&self, id: PositionId, payout: Amount) -> Result<bool, RepositoryError>;
}

/// An event as stored in the outbox, numbered when recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Increases with every recorded event (not necessarily by one: numbers taken by rolled-back
    /// transactions are skipped). Two transactions may commit in the other order than they took
    /// their numbers, but [`Outbox::after`] never passes a number that may still be committed, so
    /// a relay that resumes after the last one it published never misses a later commit. Changes
    /// to one row (serialised by its lock) are numbered in the order they committed.
    pub sequence: i64,
    pub event: RecordedEvent,
}

/// The transactional outbox: events recorded with the change that caused them.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Records an event; it becomes visible when (and only if) the transaction commits.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn record(&self, event: &RecordedEvent) -> Result<(), RepositoryError>;

    /// Up to `limit` committed events with a sequence above `after`, in sequence order, stopping
    /// before any number a transaction still running may commit (it may return fewer events than
    /// are committed, or none, until that transaction ends; a number lost to a rollback is passed
    /// once every transaction that could hold it has ended).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn after(&self, after: i64, limit: u64) -> Result<Vec<StoredEvent>, RepositoryError>;
}

/// Who, where and which key: the scope of one idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    /// The caller: a user id, or `anonymous`.
    pub caller: String,
    /// The route template and method, such as `POST /api/v1/markets/{id}/positions`.
    pub route: String,
    /// The client's `Idempotency-Key`.
    pub key: String,
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Headers worth replaying (`Location`, `ETag`, `Content-Type`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A request to claim a key before doing the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub scope: IdempotencyScope,
    /// A digest of the request (method, route, body), so that a different request reusing the key
    /// is told apart.
    pub fingerprint: String,
    pub now: DateTime<Utc>,
    /// When a completed record may be forgotten.
    pub expires_at: DateTime<Utc>,
    /// Until when an unfinished claim is honoured; after that a crashed worker's claim may be
    /// taken over.
    pub lease_until: DateTime<Utc>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: do the work, then `complete` in the same transaction.
    Acquired,
    /// The same request completed before: send this again.
    Replay(StoredResponse),
    /// The same key is being worked on right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// Idempotency records, scoped by caller, route and key.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims the key, committing the claim at once (not inside a business transaction), so that
    /// a concurrent duplicate sees [`Claim::InProgress`]. In this order: an expired record
    /// (`expires_at <= now`) or an unfinished claim whose lease ended (`lease_until <= now`)
    /// counts as absent and is taken over; then a different fingerprint is [`Claim::Mismatch`],
    /// completed or not; then a completed record is [`Claim::Replay`] and an unfinished one
    /// [`Claim::InProgress`].
    ///
    /// Inside a [`Transaction`] only [`IdempotencyStore::complete`] is meant to be used.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, RepositoryError>;

    /// Stores the response of a claimed key; called inside the business transaction so that the
    /// response exists exactly when the change does.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] when the key is not claimed and unfinished (never claimed, or
    /// completed already by a request that took over an ended lease); [`RepositoryError::Unavailable`]
    /// when the store fails.
    async fn complete(
        &self,
        scope: &IdempotencyScope,
        response: &StoredResponse,
    ) -> Result<(), RepositoryError>;

    /// Gives up an unfinished claim (the work failed and wrote nothing), so that the client may
    /// retry with the same key. A completed record is kept.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn release(&self, scope: &IdempotencyScope) -> Result<(), RepositoryError>;

    /// Deletes records that expired (`expires_at <= now`); returns how many.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError>;
}
