//! The job worker loop (runs up to `concurrency` jobs at once, heartbeats their leases, and on stop gives running jobs a grace period before releasing them) and the scheduler of periodic jobs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use application::jobs::{JobFailure, JobHandler, Outcome, Worker};
use application::markets::close_ended_markets_job;
use async_trait::async_trait;
use domain::ports::{Clock, IdGenerator, JobQueue};
use domain::{Job, JobId, JobKind};
use tokio::sync::watch;

use crate::metrics::{JobOutcomeLabels, JobOutcomes};
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio::time::Instant;

/// The longest pause after the queue failed.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The first pause after the queue failed; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The kind of [`NoopHandler`]'s jobs.
pub const NOOP_KIND: &str = "noop";

/// Completes `noop` jobs at once (for tests and the benchmark's queue scenario).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopHandler;

#[async_trait]
impl JobHandler for NoopHandler {
    fn kind(&self) -> JobKind {
        JobKind::parse(NOOP_KIND).unwrap_or_else(|_| unreachable!("`noop` is a valid kind"))
    }

    async fn run(&self, _job: &Job) -> Result<(), JobFailure> {
        Ok(())
    }
}

/// The jobs running in one loop: their tasks, and for each task its job.
struct Running {
    tasks: JoinSet<()>,
    jobs: HashMap<tokio::task::Id, (Job, AbortHandle)>,
}

impl Running {
    fn ids(&self) -> Vec<JobId> {
        self.jobs.values().map(|(job, _)| job.id).collect()
    }

    /// Forgets a finished task; a task that panicked counts as a retryable failure of its job.
    async fn finished(&mut self, worker: &Worker, result: Result<tokio::task::Id, JoinError>) {
        let (id, error) = match result {
            Ok(id) => (id, None),
            Err(error) => (error.id(), Some(error)),
        };
        let Some((job, _)) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(error) = error.filter(JoinError::is_panic) {
            tracing::error!(job = %job.id, kind = %job.kind, "a job handler panicked");
            let failure = JobFailure::Retry(format!("the handler panicked: {error}"));
            if let Err(error) = worker.record(&job, Err(failure)).await {
                tracing::warn!(%error, job = %job.id, "recording a panicked job failed");
            }
        }
    }

    async fn heartbeat(&self, worker: &Worker) {
        let ids = self.ids();
        if ids.is_empty() {
            return;
        }
        match worker.heartbeat(&ids).await {
            Ok(held) => {
                // A job missing from the answer was taken over (this loop stalled past its
                // lease) or is finishing: stop working on it.
                // (A task that has finished, its job recorded, only awaits being joined.)
                for (job, abort) in self.jobs.values() {
                    if !held.contains(&job.id) && !abort.is_finished() {
                        tracing::warn!(job = %job.id, "a job's lease was lost; stopping it");
                        abort.abort();
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "extending job leases failed"),
        }
    }
}

/// Runs `worker` until `stop` turns true (or its sender is dropped): fetches jobs while fewer
/// than `concurrency` run, every `poll` when none is available, and extends the running jobs'
/// leases every `heartbeat`. On stop it fetches no more, waits up to `grace` for the running
/// jobs, then aborts those still running and releases them (available again at once, the
/// attempt not counted).
pub async fn run_workers(worker: Worker, mut stop: watch::Receiver<bool>, outcomes: JobOutcomes) {
    let worker = Arc::new(worker);
    let settings = worker.settings().clone();
    let concurrency = settings.concurrency.max(1);
    let mut running = Running {
        tasks: JoinSet::new(),
        jobs: HashMap::new(),
    };
    let mut heartbeat = tokio::time::interval_at(
        Instant::now() + settings.heartbeat,
        settings.heartbeat.max(Duration::from_millis(1)),
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_fetch = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    tracing::info!(worker = worker.id(), kinds = ?worker.kinds(), concurrency, "job worker started");
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        let room = concurrency.saturating_sub(running.tasks.len());
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(result) = running.tasks.join_next_with_id(), if !running.tasks.is_empty() => {
                running.finished(&worker, result.map(|(id, ())| id)).await;
            }
            _ = heartbeat.tick() => running.heartbeat(&worker).await,
            () = tokio::time::sleep_until(next_fetch), if room > 0 => {
                let limit = u32::try_from(room).unwrap_or(u32::MAX).min(settings.batch.max(1));
                match worker.fetch_batch(limit).await {
                    Ok(jobs) if jobs.is_empty() => next_fetch = Instant::now() + settings.poll,
                    Ok(jobs) => {
                        backoff = FIRST_BACKOFF;
                        next_fetch = Instant::now();
                        for job in jobs {
                            let task_worker = Arc::clone(&worker);
                            let task_job = job.clone();
                            let task_outcomes = outcomes.clone();
                            let abort = running.tasks.spawn(async move {
                                match task_worker.execute(&task_job).await {
                                    Ok(outcome) => {
                                        task_outcomes
                                            .get_or_create(&JobOutcomeLabels {
                                                kind: task_job.kind.to_string(),
                                                outcome: outcome_name(outcome),
                                            })
                                            .inc();
                                        tracing::debug!(job = %task_job.id, ?outcome, "job finished");
                                    }
                                    Err(error) => tracing::warn!(%error, job = %task_job.id, "recording a job's outcome failed"),
                                }
                            });
                            running.jobs.insert(abort.id(), (job, abort));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "fetching jobs failed; retrying");
                        next_fetch = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
    shut_down(&worker, &mut running, &mut heartbeat, settings.grace).await;
}

/// The `outcome` label of a finished execution.
const fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Retrying(_) => "retrying",
        Outcome::Dead => "dead",
        Outcome::Lost => "lost",
    }
}

/// Waits up to `grace` for the running jobs (heartbeating them), then aborts and releases the
/// rest.
async fn shut_down(
    worker: &Worker,
    running: &mut Running,
    heartbeat: &mut tokio::time::Interval,
    grace: Duration,
) {
    tracing::info!(
        worker = worker.id(),
        running = running.jobs.len(),
        "job worker stopping"
    );
    let deadline = Instant::now() + grace;
    while !running.tasks.is_empty() {
        tokio::select! {
            biased;
            Some(result) = running.tasks.join_next_with_id() => {
                running.finished(worker, result.map(|(id, ())| id)).await;
            }
            _ = heartbeat.tick() => running.heartbeat(worker).await,
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    if running.tasks.is_empty() {
        tracing::info!(worker = worker.id(), "job worker stopped");
        return;
    }
    let ids = running.ids();
    running.tasks.abort_all();
    while running.tasks.join_next().await.is_some() {}
    running.jobs.clear();
    match worker.release(&ids).await {
        Ok(released) => {
            tracing::info!(
                worker = worker.id(),
                released,
                "job worker stopped; unfinished jobs released"
            );
        }
        Err(error) => {
            tracing::warn!(%error, "releasing unfinished jobs failed; they run again when their leases expire");
        }
    }
}

/// Enqueues a `close_ended_markets` job every `every` (the first at once) until `stop` turns
/// true. The job's unique key keeps one live at a time whatever the number of instances
/// scheduling it: a tick while one waits or runs costs one rejected insert.
pub async fn run_scheduler(
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tick.tick() => {
                let enqueued = match close_ended_markets_job(JobId::from_uuid(ids.next_id()), clock.now()) {
                    Ok(job) => queue.enqueue(&job).await.map_err(|error| error.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                if let Err(error) = enqueued {
                    tracing::warn!(%error, "scheduling the closing of ended markets failed; the next tick tries again");
                }
            }
        }
    }
}
