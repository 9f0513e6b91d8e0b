//! The job worker runtime on every backend (in memory, SQLite, PostgreSQL): concurrent workers run each job once, priority order, backoff to the dead-letter state, takeover after a killed worker's lease, and graceful stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use application::jobs::{JobFailure, JobHandler, Worker, WorkerSettings};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::listing::PageRequest;
use domain::ports::{Clock, JobQueue};
use domain::{Job, JobId, JobKind, JobState, NewJob, Priority, RetryPolicy};
use tests::Repositories;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

tests::parallel_contract_tests!(
    two_workers_run_every_job_exactly_once,
    one_worker_takes_high_then_normal_then_low,
    a_failing_job_backs_off_between_attempts_then_dies,
    a_killed_workers_job_is_taken_over_after_its_lease,
    a_graceful_stop_releases_jobs_that_outlive_the_grace_period,
);

/// One run of a handler: when it started, and the job's `run_at` then.
#[derive(Clone, Copy)]
struct Run {
    started: DateTime<Utc>,
    run_at: DateTime<Utc>,
}

/// Effects keyed by job id, and the order jobs ran in.
#[derive(Clone, Default)]
struct Effects {
    counts: Arc<Mutex<HashMap<JobId, u32>>>,
    order: Arc<Mutex<Vec<JobId>>>,
    /// Each run's start and the job's `run_at` then.
    runs: Arc<Mutex<Vec<Run>>>,
}

impl Effects {
    fn record(&self, job: &Job) {
        *self
            .counts
            .lock()
            .expect("counts")
            .entry(job.id)
            .or_insert(0) += 1;
        self.order.lock().expect("order").push(job.id);
    }

    fn count(&self, id: JobId) -> u32 {
        self.counts
            .lock()
            .expect("counts")
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.order.lock().expect("order").len()
    }

    fn started(&self) -> usize {
        self.runs.lock().expect("runs").len()
    }
}

/// What a test handler does.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Records its effect and succeeds.
    Count,
    /// Always fails, retryably.
    Fail,
    /// Never finishes.
    Block,
    /// Sleeps briefly, then records its effect and succeeds.
    Slow,
}

struct TestHandler {
    kind: JobKind,
    behaviour: Behaviour,
    effects: Effects,
}

#[async_trait]
impl JobHandler for TestHandler {
    fn kind(&self) -> JobKind {
        self.kind.clone()
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        self.effects.runs.lock().expect("runs").push(Run {
            started: Utc::now(),
            run_at: job.run_at,
        });
        match self.behaviour {
            Behaviour::Count => {
                self.effects.record(job);
                Ok(())
            }
            Behaviour::Fail => Err(JobFailure::Retry("boom".to_owned())),
            Behaviour::Block => std::future::pending().await,
            Behaviour::Slow => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.effects.record(job);
                Ok(())
            }
        }
    }
}

struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

const COUNT: &str = "test.count";
const FAIL: &str = "test.fail";
const BLOCK: &str = "test.block";
const SLOW: &str = "test.slow";

fn kind(name: &str) -> JobKind {
    JobKind::parse(name).expect("a kind")
}

/// Short leases (300 ms, renewed every 100 ms), so that takeover tests finish quickly.
const SHORT_LEASE: Duration = Duration::from_millis(300);

fn settings(concurrency: usize, lease: Duration) -> WorkerSettings {
    WorkerSettings {
        concurrency,
        batch: u32::try_from(concurrency).expect("small"),
        lease,
        heartbeat: lease / 3,
        poll: Duration::from_millis(10),
        retry: RetryPolicy {
            base: Duration::from_millis(200),
            max: Duration::from_secs(1),
        },
        grace: Duration::from_millis(200),
    }
}

/// A worker named `name` running `kinds` with `behaviour`, recording into `effects`, on short
/// leases.
fn worker(
    queue: &Arc<dyn JobQueue>,
    name: &str,
    concurrency: usize,
    handlers: &[(&str, Behaviour)],
    effects: &Effects,
) -> Worker {
    leasing_worker(queue, name, concurrency, handlers, effects, SHORT_LEASE)
}

/// [`worker`] with leases of `lease`.
fn leasing_worker(
    queue: &Arc<dyn JobQueue>,
    name: &str,
    concurrency: usize,
    handlers: &[(&str, Behaviour)],
    effects: &Effects,
    lease: Duration,
) -> Worker {
    handlers.iter().fold(
        Worker::new(
            Arc::clone(queue),
            Arc::new(RealClock),
            name,
            settings(concurrency, lease),
        ),
        |worker, (kind_name, behaviour)| {
            worker.with_handler(Arc::new(TestHandler {
                kind: kind(kind_name),
                behaviour: *behaviour,
                effects: effects.clone(),
            }))
        },
    )
}

/// A running worker loop and its stop switch.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn start(worker: Worker) -> Running {
    let (stop, stopped) = watch::channel(false);
    Running {
        stop,
        task: tokio::spawn(bootstrap::worker::run_workers(
            worker,
            stopped,
            bootstrap::metrics::JobOutcomes::default(),
        )),
    }
}

impl Running {
    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the loop stops in time")
            .expect("the loop ends cleanly");
    }
}

async fn enqueue(
    queue: &Arc<dyn JobQueue>,
    kind_name: &str,
    priority: Priority,
    max_attempts: u32,
) -> JobId {
    let job = NewJob::new(
        JobId::from_uuid(Uuid::now_v7()),
        kind(kind_name),
        "{}",
        Utc::now(),
    )
    .expect("a job")
    .with_priority(priority)
    .with_max_attempts(max_attempts)
    .expect("attempts");
    queue.enqueue(&job).await.expect("enqueued").id()
}

async fn found(queue: &Arc<dyn JobQueue>, id: JobId) -> Job {
    queue.find(id).await.expect("a read").expect("the job")
}

/// Waits up to `seconds` for `done`, checking every 20 ms.
async fn eventually(seconds: u64, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn two_workers_run_every_job_exactly_once(repositories: Repositories) {
    let queue = &repositories.jobs;
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(enqueue(queue, COUNT, Priority::Normal, 5).await);
    }
    let effects = Effects::default();
    // Leases that cannot run out during the test: delivery is at least once, so a heartbeat held
    // up past a 300 ms lease (SQLite's single writer under a loaded CI machine) lets the other
    // worker take the job over and run it again (302 runs for 300 jobs, once). What this test
    // checks is that two workers never claim the same job.
    let lease = Duration::from_secs(30);
    let first = start(leasing_worker(
        queue,
        "w1",
        4,
        &[(COUNT, Behaviour::Count)],
        &effects,
        lease,
    ));
    let second = start(leasing_worker(
        queue,
        "w2",
        4,
        &[(COUNT, Behaviour::Count)],
        &effects,
        lease,
    ));
    eventually(20, "300 jobs run", async || effects.total() >= 300).await;
    first.stop().await;
    second.stop().await;
    assert_eq!(effects.total(), 300);
    for id in &ids {
        assert_eq!(effects.count(*id), 1, "{id}");
    }
    let succeeded = queue
        .list(
            Some(JobState::Succeeded),
            PageRequest::new(1, 0).expect("a page"),
        )
        .await
        .expect("a list");
    assert_eq!(succeeded.total, 300);
    // Both loops took part.
    let mut workers = std::collections::BTreeSet::new();
    for id in &ids {
        workers.insert(found(queue, *id).await.worker.expect("a worker"));
    }
    assert_eq!(workers.len(), 2, "{workers:?}");
}

async fn one_worker_takes_high_then_normal_then_low(repositories: Repositories) {
    let queue = &repositories.jobs;
    let mut expected = Vec::new();
    for priority in [Priority::Low, Priority::Normal, Priority::High] {
        for _ in 0..3 {
            expected.push((priority, enqueue(queue, COUNT, priority, 5).await));
        }
    }
    expected.sort_by_key(|(priority, _)| *priority);
    let effects = Effects::default();
    let running = start(worker(
        queue,
        "w1",
        1,
        &[(COUNT, Behaviour::Count)],
        &effects,
    ));
    eventually(5, "9 jobs run", async || effects.total() >= 9).await;
    running.stop().await;
    let order = effects.order.lock().expect("order").clone();
    let priorities: Vec<Priority> = order
        .iter()
        .map(|id| {
            expected
                .iter()
                .find(|(_, expected)| expected == id)
                .expect("a job")
                .0
        })
        .collect();
    assert_eq!(
        priorities,
        expected
            .iter()
            .map(|(priority, _)| *priority)
            .collect::<Vec<_>>()
    );
}

async fn a_failing_job_backs_off_between_attempts_then_dies(repositories: Repositories) {
    let queue = &repositories.jobs;
    let id = enqueue(queue, FAIL, Priority::Normal, 3).await;
    let effects = Effects::default();
    let running = start(worker(queue, "w1", 1, &[(FAIL, Behaviour::Fail)], &effects));
    eventually(5, "the job dies", async || {
        found(queue, id).await.state == JobState::Dead
    })
    .await;
    running.stop().await;
    let job = found(queue, id).await;
    assert_eq!(job.attempts, 3);
    assert_eq!(job.last_error.as_deref(), Some("boom"));
    let runs = effects.runs.lock().expect("runs").clone();
    assert_eq!(runs.len(), 3);
    let policy = settings(1, SHORT_LEASE).retry;
    let slack = chrono::Duration::milliseconds(150);
    for attempt in 1..=2_u32 {
        let started = runs[attempt as usize - 1].started;
        let Run {
            started: next_started,
            run_at: next_run_at,
        } = runs[attempt as usize];
        let full = chrono::Duration::from_std(policy.delay(attempt, 1.0)).expect("a delay");
        let delta = next_run_at - started;
        assert!(
            delta >= full / 2 && delta <= full + slack,
            "attempt {attempt}: retried {delta} later, expected {} to {full}",
            full / 2
        );
        assert!(next_started >= next_run_at, "attempt {attempt} ran early");
    }
}

async fn a_killed_workers_job_is_taken_over_after_its_lease(repositories: Repositories) {
    let queue = &repositories.jobs;
    let id = enqueue(queue, COUNT, Priority::Normal, 5).await;
    let stuck = Effects::default();
    let doomed = start(worker(queue, "w1", 1, &[(COUNT, Behaviour::Block)], &stuck));
    eventually(5, "the first worker starts the job", async || {
        stuck.started() == 1
    })
    .await;
    // The process dies: no release, no more heartbeats.
    doomed.task.abort();
    let killed_at = Utc::now();
    let effects = Effects::default();
    let rescuer = start(worker(
        queue,
        "w2",
        1,
        &[(COUNT, Behaviour::Count)],
        &effects,
    ));
    eventually(5, "the job is taken over", async || {
        found(queue, id).await.state == JobState::Succeeded
    })
    .await;
    let rescued_at = effects.runs.lock().expect("runs")[0].started;
    rescuer.stop().await;
    assert_eq!(effects.count(id), 1);
    assert_eq!(effects.total(), 1);
    assert_eq!(stuck.total(), 0);
    let job = found(queue, id).await;
    assert_eq!((job.attempts, job.worker.as_deref()), (2, Some("w2")));
    // Not before the dead worker's lease (300 ms, renewed every 100 ms) ran out.
    assert!(
        rescued_at - killed_at >= chrono::Duration::milliseconds(150),
        "taken over after {}",
        rescued_at - killed_at
    );
}

async fn a_graceful_stop_releases_jobs_that_outlive_the_grace_period(repositories: Repositories) {
    let queue = &repositories.jobs;
    let blocked = enqueue(queue, BLOCK, Priority::High, 5).await;
    let slow = enqueue(queue, SLOW, Priority::Normal, 5).await;
    let effects = Effects::default();
    let running = start(worker(
        queue,
        "w1",
        2,
        &[(BLOCK, Behaviour::Block), (SLOW, Behaviour::Slow)],
        &effects,
    ));
    eventually(5, "both jobs start", async || effects.started() == 2).await;
    let stopping = tokio::time::Instant::now();
    running.stop().await;
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "stopped in {took:?}"
    );
    // The short job finished within the grace period; the other was given back unstarted.
    assert_eq!(found(queue, slow).await.state, JobState::Succeeded);
    assert_eq!(effects.count(slow), 1);
    let job = found(queue, blocked).await;
    assert_eq!((job.state, job.attempts), (JobState::Available, 0));
    assert_eq!(job.lease_until, None);
}
