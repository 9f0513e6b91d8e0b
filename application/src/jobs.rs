//! Background job workers' steps (fetch a batch, run a job and record how it ended, heartbeat, release); the loop that drives them lives in the composition root.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use domain::ports::{Clock, JobQueue, RepositoryError};
use domain::{Job, JobId, JobKind, JobState, RetryPolicy};

/// Why a job's run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// A passing problem: the job runs again after a backoff while it has attempts left.
    Retry(String),
    /// The job can never succeed: it goes dead at once.
    Permanent(String),
}

/// Runs the jobs of one kind. Delivery is at least once, so `run` must be idempotent.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The kind of job this handler runs.
    fn kind(&self) -> JobKind;

    /// Runs `job`.
    ///
    /// # Errors
    /// [`JobFailure`]: retry later or give up.
    async fn run(&self, job: &Job) -> Result<(), JobFailure>;
}

/// How a worker works.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSettings {
    /// Jobs run at once, at most.
    pub concurrency: usize,
    /// Jobs fetched at once, at most.
    pub batch: u32,
    /// How long a fetched job is held before another worker may take it over.
    pub lease: Duration,
    /// How often the leases of running jobs are extended.
    pub heartbeat: Duration,
    /// The pause when no job is available.
    pub poll: Duration,
    /// The backoff between attempts.
    pub retry: RetryPolicy,
    /// On stop: how long running jobs may finish before they are released.
    pub grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            batch: 4,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_millis(100),
            retry: RetryPolicy {
                base: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            grace: Duration::from_secs(10),
        }
    }
}

/// How one execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded and the job is done.
    Succeeded,
    /// The handler failed; the job runs again at this time.
    Retrying(DateTime<Utc>),
    /// The handler failed for good (or had no attempt left, or the kind has no handler).
    Dead,
    /// This worker no longer held the job (its lease ran out and another worker took it):
    /// nothing was recorded.
    Lost,
}

/// Fetches and runs jobs of the kinds it has handlers for, as one worker of the queue.
#[derive(Clone)]
pub struct Worker {
    queue: Arc<dyn JobQueue>,
    handlers: BTreeMap<JobKind, Arc<dyn JobHandler>>,
    clock: Arc<dyn Clock>,
    id: String,
    settings: WorkerSettings,
}

impl Worker {
    /// A worker named `id` (unique per process and loop) with no handler yet.
    #[must_use]
    pub fn new(
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
        id: impl Into<String>,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            queue,
            handlers: BTreeMap::new(),
            clock,
            id: id.into(),
            settings,
        }
    }

    /// Adds `handler` for its kind (replacing an earlier one of the same kind).
    #[must_use]
    pub fn with_handler(mut self, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(handler.kind(), handler);
        self
    }

    /// This worker's name, as the queue knows it.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    #[must_use]
    pub const fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    /// The kinds this worker has handlers for.
    #[must_use]
    pub fn kinds(&self) -> Vec<JobKind> {
        self.handlers.keys().cloned().collect()
    }

    fn lease_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.settings.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(30))
    }

    /// Claims up to `limit` runnable jobs of this worker's kinds, leased for
    /// [`WorkerSettings::lease`].
    ///
    /// # Errors
    /// [`RepositoryError`] when the queue fails; nothing was claimed.
    pub async fn fetch_batch(&self, limit: u32) -> Result<Vec<Job>, RepositoryError> {
        let kinds = self.kinds();
        if kinds.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        self.queue
            .fetch(&self.id, &kinds, limit, now, self.lease_until(now))
            .await
    }

    /// Runs `job` (fetched by this worker) with its kind's handler and records how it ended. A
    /// kind without a handler fails permanently.
    ///
    /// # Errors
    /// [`RepositoryError`] when the outcome could not be recorded: the job runs again once its
    /// lease expires.
    pub async fn execute(&self, job: &Job) -> Result<Outcome, RepositoryError> {
        let result = match self.handlers.get(&job.kind) {
            Some(handler) => handler.run(job).await,
            None => Err(JobFailure::Permanent(format!(
                "no handler for the job kind `{}` on worker {}",
                job.kind, self.id
            ))),
        };
        self.record(job, result).await
    }

    /// Records how a run of `job` ended: completes it, or fails it with a retry at
    /// `now + retry.delay(attempts, jitter)` for a [`JobFailure::Retry`] while it has attempts
    /// left, or for good otherwise.
    ///
    /// # Errors
    /// [`RepositoryError`] when the queue fails.
    pub async fn record(
        &self,
        job: &Job,
        result: Result<(), JobFailure>,
    ) -> Result<Outcome, RepositoryError> {
        let now = self.clock.now();
        let (error, retry_at) = match result {
            Ok(()) => {
                let held = self.queue.complete(job.id, &self.id, now).await?;
                return Ok(if held {
                    Outcome::Succeeded
                } else {
                    Outcome::Lost
                });
            }
            Err(JobFailure::Retry(error)) if job.attempts < job.max_attempts => {
                let delay = self
                    .settings
                    .retry
                    .delay(job.attempts, rand::random::<f64>());
                let delay =
                    chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::zero());
                // Whole microseconds, as the databases store times.
                (error, Some((now + delay).trunc_subsecs(6)))
            }
            Err(JobFailure::Retry(error) | JobFailure::Permanent(error)) => (error, None),
        };
        tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %error, "a job failed");
        Ok(
            match self
                .queue
                .fail(job.id, &self.id, &error, retry_at, now)
                .await?
            {
                None => Outcome::Lost,
                Some(JobState::Available) => retry_at.map_or(Outcome::Dead, Outcome::Retrying),
                Some(_) => Outcome::Dead,
            },
        )
    }

    /// Extends the leases of the running jobs of `ids`; returns those this worker still holds.
    ///
    /// # Errors
    /// [`RepositoryError`] when the queue fails.
    pub async fn heartbeat(&self, ids: &[JobId]) -> Result<Vec<JobId>, RepositoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let until = self.lease_until(self.clock.now());
        self.queue.heartbeat(ids, &self.id, until).await
    }

    /// Gives back the jobs of `ids` unfinished (a graceful stop), without counting the attempt.
    ///
    /// # Errors
    /// [`RepositoryError`] when the queue fails.
    pub async fn release(&self, ids: &[JobId]) -> Result<u64, RepositoryError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.queue.release(ids, &self.id).await
    }
}

#[cfg(test)]
mod tests {
    use adapter_memory::{FixedClock, InMemoryStore};
    use domain::NewJob;
    use uuid::Uuid;

    use super::*;

    struct Scripted {
        kind: JobKind,
        result: Result<(), JobFailure>,
    }

    #[async_trait]
    impl JobHandler for Scripted {
        fn kind(&self) -> JobKind {
            self.kind.clone()
        }

        async fn run(&self, _job: &Job) -> Result<(), JobFailure> {
            self.result.clone()
        }
    }

    fn kind(name: &str) -> JobKind {
        JobKind::parse(name).expect("a kind")
    }

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("a time")
    }

    fn settings() -> WorkerSettings {
        WorkerSettings {
            retry: RetryPolicy {
                base: Duration::from_secs(2),
                max: Duration::from_secs(60),
            },
            ..WorkerSettings::default()
        }
    }

    struct Fixture {
        queue: Arc<dyn JobQueue>,
        clock: Arc<FixedClock>,
        worker: Worker,
    }

    fn fixture(result: Result<(), JobFailure>) -> Fixture {
        let store = InMemoryStore::new();
        let queue: Arc<dyn JobQueue> = store.jobs();
        let clock = Arc::new(FixedClock::new(start()));
        let worker = Worker::new(Arc::clone(&queue), clock.clone(), "w1", settings()).with_handler(
            Arc::new(Scripted {
                kind: kind("test.job"),
                result,
            }),
        );
        Fixture {
            queue,
            clock,
            worker,
        }
    }

    async fn enqueue(queue: &Arc<dyn JobQueue>, kind_name: &str, max_attempts: u32) -> JobId {
        let job = NewJob::new(
            JobId::from_uuid(Uuid::now_v7()),
            kind(kind_name),
            "{}",
            start(),
        )
        .expect("a job")
        .with_max_attempts(max_attempts)
        .expect("attempts");
        queue.enqueue(&job).await.expect("enqueued").id()
    }

    async fn found(queue: &Arc<dyn JobQueue>, id: JobId) -> Job {
        queue.find(id).await.expect("a read").expect("the job")
    }

    #[tokio::test]
    async fn a_successful_job_is_completed() {
        let f = fixture(Ok(()));
        let id = enqueue(&f.queue, "test.job", 3).await;
        let jobs = f.worker.fetch_batch(10).await.expect("fetched");
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            f.worker.execute(&jobs[0]).await.expect("recorded"),
            Outcome::Succeeded
        );
        assert_eq!(found(&f.queue, id).await.state, JobState::Succeeded);
    }

    #[tokio::test]
    async fn a_retryable_failure_comes_back_within_the_backoff() {
        let f = fixture(Err(JobFailure::Retry("flaky".into())));
        let id = enqueue(&f.queue, "test.job", 3).await;
        for attempt in 1..=2_u32 {
            let jobs = f.worker.fetch_batch(10).await.expect("fetched");
            assert_eq!(jobs.len(), 1, "attempt {attempt}");
            let now = f.clock.now();
            let Outcome::Retrying(at) = f.worker.execute(&jobs[0]).await.expect("recorded") else {
                panic!("not retried");
            };
            let full = chrono::Duration::seconds(2 * i64::from(1_u32 << (attempt - 1)));
            assert!(at >= now + full / 2 && at <= now + full, "{at} after {now}");
            let job = found(&f.queue, id).await;
            assert_eq!((job.state, job.run_at), (JobState::Available, at));
            assert!(f.worker.fetch_batch(10).await.expect("fetched").is_empty());
            f.clock.set(at);
        }
        // The third and last attempt fails: dead with its error.
        let jobs = f.worker.fetch_batch(10).await.expect("fetched");
        assert_eq!(
            f.worker.execute(&jobs[0]).await.expect("recorded"),
            Outcome::Dead
        );
        let job = found(&f.queue, id).await;
        assert_eq!(job.state, JobState::Dead);
        assert_eq!(job.attempts, 3);
        assert_eq!(job.last_error.as_deref(), Some("flaky"));
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_at_once() {
        let f = fixture(Err(JobFailure::Permanent("bad payload".into())));
        let id = enqueue(&f.queue, "test.job", 5).await;
        let jobs = f.worker.fetch_batch(10).await.expect("fetched");
        assert_eq!(
            f.worker.execute(&jobs[0]).await.expect("recorded"),
            Outcome::Dead
        );
        let job = found(&f.queue, id).await;
        assert_eq!((job.state, job.attempts), (JobState::Dead, 1));
        assert_eq!(job.last_error.as_deref(), Some("bad payload"));
    }

    #[tokio::test]
    async fn a_kind_without_a_handler_is_dead_with_a_clear_error() {
        let f = fixture(Ok(()));
        let id = enqueue(&f.queue, "other.job", 5).await;
        // The worker never fetches kinds it cannot run; a job handed to it anyway is refused.
        assert!(f.worker.fetch_batch(10).await.expect("fetched").is_empty());
        let now = f.clock.now();
        let jobs = f
            .queue
            .fetch(
                "w1",
                &[kind("other.job")],
                1,
                now,
                now + chrono::Duration::seconds(30),
            )
            .await
            .expect("fetched");
        assert_eq!(
            f.worker.execute(&jobs[0]).await.expect("recorded"),
            Outcome::Dead
        );
        let job = found(&f.queue, id).await;
        assert_eq!(job.state, JobState::Dead);
        let error = job.last_error.expect("an error");
        assert!(
            error.contains("no handler for the job kind `other.job`"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn heartbeat_and_release_act_on_held_jobs_only() {
        let f = fixture(Ok(()));
        let id = enqueue(&f.queue, "test.job", 5).await;
        let jobs = f.worker.fetch_batch(10).await.expect("fetched");
        f.clock.advance(chrono::Duration::seconds(20));
        assert_eq!(f.worker.heartbeat(&[id]).await.expect("renewed"), [id]);
        let job = found(&f.queue, id).await;
        assert_eq!(
            job.lease_until,
            Some(f.clock.now() + chrono::Duration::seconds(30))
        );
        assert_eq!(f.worker.release(&[jobs[0].id]).await.expect("released"), 1);
        let job = found(&f.queue, id).await;
        assert_eq!((job.state, job.attempts), (JobState::Available, 0));
        assert!(f.worker.heartbeat(&[id]).await.expect("read").is_empty());
    }
}

/// Readiness of the job queue as a soft dependency: degraded (never unready) while the oldest due
/// job has waited longer than `max_lag`, so that a backlog shows in `/health/ready` without taking
/// instances out of the load balancer.
pub struct QueueLagProbe {
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    max_lag: Duration,
}

impl QueueLagProbe {
    #[must_use]
    pub fn new(queue: Arc<dyn JobQueue>, clock: Arc<dyn Clock>, max_lag: Duration) -> Self {
        Self {
            queue,
            clock,
            max_lag,
        }
    }
}

/// The oldest due job has waited too long.
#[derive(Debug, thiserror::Error)]
#[error("the oldest due job has waited {waited_secs} s, more than {max_secs} s")]
struct Lagging {
    waited_secs: i64,
    max_secs: u64,
}

#[async_trait]
impl domain::ports::HealthProbe for QueueLagProbe {
    fn name(&self) -> &'static str {
        "job_queue"
    }

    fn required(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), domain::ports::ProbeError> {
        let now = self.clock.now();
        let failure = |cause: domain::ports::BoxError| domain::ports::ProbeError {
            name: "job_queue",
            cause,
        };
        let Some(oldest) = self
            .queue
            .oldest_due(now)
            .await
            .map_err(|error| failure(Box::new(error)))?
        else {
            return Ok(());
        };
        let waited = now - oldest;
        let max = chrono::Duration::from_std(self.max_lag).unwrap_or(chrono::Duration::MAX);
        if waited > max {
            return Err(failure(Box::new(Lagging {
                waited_secs: waited.num_seconds(),
                max_secs: self.max_lag.as_secs(),
            })));
        }
        Ok(())
    }
}
