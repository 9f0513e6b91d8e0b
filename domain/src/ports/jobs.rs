//! The job queue port: durable background jobs with priorities, delays, leases, retries and a dead-letter state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RepositoryError;
use crate::id::JobId;
use crate::job::{Job, JobKind, JobState, NewJob};
use crate::listing::{Page, PageRequest};

/// What [`JobQueue::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// The job was stored.
    Created(JobId),
    /// A live (available or running) job holds the same unique key: nothing was stored; this is
    /// that job.
    Duplicate(JobId),
}

impl Enqueued {
    /// The id of the job that will run.
    #[must_use]
    pub const fn id(self) -> JobId {
        match self {
            Self::Created(id) | Self::Duplicate(id) => id,
        }
    }
}

/// Durable jobs, fetched by workers under a lease.
///
/// Delivery is at least once: a job whose worker dies (its lease runs out without a heartbeat)
/// is fetched again, so handlers must be idempotent. Times are given by the caller (a
/// [`crate::ports::Clock`]), never read by the adapter, so that tests control them.
///
/// Outside a transaction every method commits at once. Inside one ([`crate::ports::Transaction::jobs`])
/// a job enqueued exists exactly when the transaction commits; the other methods are meant for
/// workers and admin tools, outside transactions.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Stores a new available job, unless it has a unique key that a live job holds already.
    ///
    /// # Errors
    /// - [`RepositoryError::Conflict`]`("id")` when a job with the same id exists;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, RepositoryError>;

    /// Claims up to `limit` jobs of `kinds` for `worker` until `lease_until`: available jobs with
    /// `run_at <= now`, and running jobs whose lease ended before `now` (their worker is presumed
    /// dead), in priority order (high first), then `run_at`, then id. Each is returned running,
    /// held by `worker`, with its attempts counted. Concurrent fetchers never get the same job.
    ///
    /// A running job whose lease ended and that has no attempt left is made dead instead
    /// (`last_error` says the lease expired).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails; nothing was claimed.
    async fn fetch(
        &self,
        worker: &str,
        kinds: &[JobKind],
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Job>, RepositoryError>;

    /// Extends the leases of the jobs of `ids` that `worker` still holds (running, fetched by
    /// it) to `lease_until`; returns those ids. A job missing from the answer was taken over or
    /// finished: its worker should stop working on it.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn heartbeat(
        &self,
        ids: &[JobId],
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<JobId>, RepositoryError>;

    /// Marks a job that `worker` holds as succeeded. Returns `false`, changing nothing, when
    /// `worker` does not hold it (any more).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn complete(
        &self,
        id: JobId,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Records a failed attempt of a job that `worker` holds, keeping `error` (cut to
    /// [`Job::MAX_ERROR_BYTES`]) as `last_error`: with `retry_at` and attempts left, the job is
    /// available again at `retry_at`; otherwise it is dead. Returns the new state, or `None`,
    /// changing nothing, when `worker` does not hold the job.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<JobState>, RepositoryError>;

    /// Gives back the jobs of `ids` that `worker` holds, unstarted (a graceful shutdown): they are
    /// available again at once, and the attempt is not counted. Returns how many were released.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn release(&self, ids: &[JobId], worker: &str) -> Result<u64, RepositoryError>;

    /// The job with this id.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find(&self, id: JobId) -> Result<Option<Job>, RepositoryError>;

    /// One page of the jobs in `state` (all jobs with `None`), newest first (by `created_at`,
    /// then id, descending), and the total number of matches.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn list(
        &self,
        state: Option<JobState>,
        page: PageRequest,
    ) -> Result<Page<Job>, RepositoryError>;

    /// When the oldest job that is waiting to run became due: the smallest `run_at` of the
    /// available jobs with `run_at <= now` (`None` when none is due). `now` minus it is the queue's
    /// lag.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn oldest_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, RepositoryError>;

    /// Makes a dead job available again at `now`, its attempts reset to 0 (its `last_error` is
    /// kept). Returns `false`, changing nothing, when the job does not exist or is not dead.
    ///
    /// # Errors
    /// - [`RepositoryError::Conflict`]`("unique_key")` when a live job holds its unique key now;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn retry(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, RepositoryError>;
}
