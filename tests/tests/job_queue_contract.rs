//! The `JobQueue` contract on every backend (in memory, SQLite, PostgreSQL): unique keys, priority order, leases and killed workers, retries and the dead-letter state, transactional enqueue, and concurrent fetchers that never share a job.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::listing::PageRequest;
use domain::ports::{Enqueued, JobQueue, RepositoryError};
use domain::{Job, JobId, JobKind, JobState, NewJob, Priority, UserId};
use tests::Repositories;
use uuid::Uuid;

tests::contract_tests!(
    an_enqueued_job_is_found_as_it_was_given,
    a_unique_key_dedupes_only_while_a_job_holding_it_is_live,
    fetch_takes_priority_then_run_at_and_skips_future_jobs_and_other_kinds,
    fetch_claims_at_most_the_limit,
    a_claimed_job_is_fetched_again_only_after_its_lease_expires,
    a_job_whose_lease_expires_on_its_last_attempt_goes_dead,
    heartbeat_extends_only_the_holders_leases,
    complete_and_fail_by_another_worker_change_nothing,
    a_failure_with_attempts_left_is_retried_at_the_given_time,
    an_exhausted_job_is_dead_with_its_last_error,
    a_dead_job_is_retried_by_hand,
    release_gives_jobs_back_without_counting_the_attempt,
    jobs_are_listed_by_state_newest_first_in_pages,
    a_job_enqueued_in_a_transaction_exists_only_if_it_commits,
    the_oldest_due_job_gives_the_queues_lag,
);

tests::parallel_contract_tests!(concurrent_fetchers_claim_disjoint_sets_covering_every_job);

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a timestamp")
}

fn kind(name: &str) -> JobKind {
    JobKind::parse(name).expect("a kind")
}

fn id() -> JobId {
    JobId::from_uuid(Uuid::now_v7())
}

/// A `market.settle` job created at `at(0)`, runnable at once.
fn job() -> NewJob {
    NewJob::new(id(), kind("market.settle"), r#"{"market":1}"#, at(0)).expect("a job")
}

async fn enqueue(queue: &Arc<dyn JobQueue>, job: &NewJob) -> JobId {
    match queue.enqueue(job).await.expect("enqueued") {
        Enqueued::Created(id) => id,
        Enqueued::Duplicate(id) => panic!("unexpected duplicate of {id}"),
    }
}

async fn found(queue: &Arc<dyn JobQueue>, id: JobId) -> Job {
    queue.find(id).await.expect("a read").expect("the job")
}

/// Fetches `market.settle` jobs for `worker` at `now`, leased for 30 seconds.
async fn fetch(queue: &Arc<dyn JobQueue>, worker: &str, limit: u32, now: i64) -> Vec<Job> {
    queue
        .fetch(
            worker,
            &[kind("market.settle")],
            limit,
            at(now),
            at(now + 30),
        )
        .await
        .expect("a fetch")
}

fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|job| job.id).collect()
}

async fn an_enqueued_job_is_found_as_it_was_given(repositories: Repositories) {
    let queue = &repositories.jobs;
    let owner = UserId::from_uuid(Uuid::now_v7());
    let new = job()
        .with_priority(Priority::Low)
        .with_run_at(at(60))
        .with_max_attempts(7)
        .expect("in range")
        .with_unique_key("settle:1")
        .expect("a key")
        .with_owner(owner);
    let id = enqueue(queue, &new).await;
    assert_eq!(id, new.id());
    assert_eq!(found(queue, id).await, new.clone().into_job());
    assert_eq!(queue.find(self::id()).await.expect("a read"), None);
    assert!(matches!(
        queue.enqueue(&new).await,
        Err(RepositoryError::Conflict("id"))
    ));
}

async fn a_unique_key_dedupes_only_while_a_job_holding_it_is_live(repositories: Repositories) {
    let queue = &repositories.jobs;
    let keyed = || job().with_unique_key("settle:7").expect("a key");
    let first = enqueue(queue, &keyed()).await;
    assert_eq!(
        queue.enqueue(&keyed()).await.expect("an answer"),
        Enqueued::Duplicate(first),
        "available"
    );
    enqueue(queue, &job()).await; // no key: never a duplicate
    enqueue(queue, &job().with_unique_key("settle:8").expect("a key")).await;

    assert_eq!(ids(&fetch(queue, "w", 1, 1).await), vec![first]);
    assert_eq!(
        queue.enqueue(&keyed()).await.expect("an answer"),
        Enqueued::Duplicate(first),
        "running"
    );
    assert!(queue.complete(first, "w", at(2)).await.expect("completed"));
    let second = keyed();
    assert_eq!(
        queue.enqueue(&second).await.expect("an answer"),
        Enqueued::Created(second.id()),
        "a succeeded job no longer holds its key"
    );
    let third = keyed();
    assert_eq!(
        queue.enqueue(&third).await.expect("an answer"),
        Enqueued::Duplicate(second.id())
    );
}

async fn fetch_takes_priority_then_run_at_and_skips_future_jobs_and_other_kinds(
    repositories: Repositories,
) {
    let queue = &repositories.jobs;
    let low = enqueue(queue, &job().with_priority(Priority::Low)).await;
    let normal_late = enqueue(queue, &job().with_run_at(at(5))).await;
    let normal_early = enqueue(queue, &job().with_run_at(at(1))).await;
    let high = enqueue(
        queue,
        &job().with_priority(Priority::High).with_run_at(at(9)),
    )
    .await;
    let future = enqueue(
        queue,
        &job().with_priority(Priority::High).with_run_at(at(20)),
    )
    .await;
    let other = NewJob::new(id(), kind("email.welcome"), "{}", at(0)).expect("a job");
    let other = enqueue(queue, &other).await;

    let claimed = fetch(queue, "w", 10, 10).await;
    assert_eq!(ids(&claimed), vec![high, normal_early, normal_late, low]);
    for job in &claimed {
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.worker.as_deref(), Some("w"));
        assert_eq!(job.lease_until, Some(at(40)));
        assert_eq!(job.attempts, 1);
    }
    assert_eq!(found(queue, future).await.state, JobState::Available);
    assert_eq!(found(queue, other).await.state, JobState::Available);
    // Within the others' leases (until 40): only the job that came due.
    assert_eq!(ids(&fetch(queue, "w", 10, 25).await), vec![future]);
    let none: Vec<Job> = queue
        .fetch("w", &[], 10, at(100), at(130))
        .await
        .expect("a fetch");
    assert!(none.is_empty());
}

async fn fetch_claims_at_most_the_limit(repositories: Repositories) {
    let queue = &repositories.jobs;
    let mut all = Vec::new();
    for second in 0..5 {
        all.push(enqueue(queue, &job().with_run_at(at(second))).await);
    }
    assert_eq!(ids(&fetch(queue, "a", 2, 10).await), all[..2].to_vec());
    assert_eq!(ids(&fetch(queue, "b", 2, 10).await), all[2..4].to_vec());
    assert_eq!(ids(&fetch(queue, "c", 2, 10).await), all[4..].to_vec());
    assert!(fetch(queue, "d", 2, 10).await.is_empty());
    assert!(fetch(queue, "d", 0, 10).await.is_empty());
}

async fn a_claimed_job_is_fetched_again_only_after_its_lease_expires(repositories: Repositories) {
    let queue = &repositories.jobs;
    let id = enqueue(queue, &job()).await;
    assert_eq!(ids(&fetch(queue, "killed", 5, 0).await), vec![id]); // lease until 30
    assert!(fetch(queue, "b", 5, 10).await.is_empty());
    assert!(
        fetch(queue, "b", 5, 30).await.is_empty(),
        "not before the lease ends"
    );
    let again = fetch(queue, "b", 5, 31).await;
    assert_eq!(ids(&again), vec![id]);
    assert_eq!(again[0].worker.as_deref(), Some("b"));
    assert_eq!(again[0].attempts, 2);
    assert!(
        !queue
            .complete(id, "killed", at(32))
            .await
            .expect("an answer"),
        "the killed worker lost it"
    );
    assert!(queue.complete(id, "b", at(32)).await.expect("completed"));
    assert_eq!(found(queue, id).await.state, JobState::Succeeded);
}

async fn a_job_whose_lease_expires_on_its_last_attempt_goes_dead(repositories: Repositories) {
    let queue = &repositories.jobs;
    let id = enqueue(queue, &job().with_max_attempts(1).expect("in range")).await;
    assert_eq!(ids(&fetch(queue, "killed", 5, 0).await), vec![id]);
    assert!(fetch(queue, "b", 5, 31).await.is_empty());
    let dead = found(queue, id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert!(dead.last_error.is_some());
}

async fn heartbeat_extends_only_the_holders_leases(repositories: Repositories) {
    let queue = &repositories.jobs;
    let mine = enqueue(queue, &job()).await;
    let theirs = enqueue(queue, &job().with_run_at(at(1))).await;
    let waiting = enqueue(queue, &job().with_run_at(at(50))).await;
    assert_eq!(ids(&fetch(queue, "a", 1, 2).await), vec![mine]);
    assert_eq!(ids(&fetch(queue, "b", 1, 2).await), vec![theirs]);

    let held = queue
        .heartbeat(&[mine, theirs, waiting], "a", at(100))
        .await
        .expect("a heartbeat");
    assert_eq!(held, vec![mine]);
    assert_eq!(found(queue, mine).await.lease_until, Some(at(100)));
    assert_eq!(found(queue, theirs).await.lease_until, Some(at(32)));
    assert_eq!(found(queue, waiting).await.lease_until, None);
    // b's lease ran out and c took the job over; a's was extended and stays a's.
    assert_eq!(ids(&fetch(queue, "c", 5, 50).await), vec![theirs, waiting]);
    let lost = queue
        .heartbeat(&[theirs], "b", at(200))
        .await
        .expect("a heartbeat");
    assert!(lost.is_empty());
}

async fn complete_and_fail_by_another_worker_change_nothing(repositories: Repositories) {
    let queue = &repositories.jobs;
    let id = enqueue(queue, &job()).await;
    assert!(
        !queue.complete(id, "a", at(1)).await.expect("an answer"),
        "not fetched yet"
    );
    fetch(queue, "a", 1, 1).await;
    let before = found(queue, id).await;
    assert!(!queue.complete(id, "b", at(2)).await.expect("an answer"));
    let failed = queue.fail(id, "b", "boom", Some(at(10)), at(2)).await;
    assert_eq!(failed.expect("an answer"), None);
    assert_eq!(
        queue.release(&[id], "b").await.expect("an answer"),
        0,
        "not b's"
    );
    assert_eq!(found(queue, id).await, before);
    assert!(
        !queue
            .complete(self::id(), "a", at(2))
            .await
            .expect("an answer"),
        "unknown"
    );
    assert!(queue.complete(id, "a", at(3)).await.expect("completed"));
    assert!(
        !queue.complete(id, "a", at(4)).await.expect("an answer"),
        "done already"
    );
}

async fn a_failure_with_attempts_left_is_retried_at_the_given_time(repositories: Repositories) {
    let queue = &repositories.jobs;
    let id = enqueue(queue, &job().with_max_attempts(3).expect("in range")).await;
    fetch(queue, "a", 1, 1).await;
    let state = queue
        .fail(id, "a", "timeout", Some(at(20)), at(2))
        .await
        .expect("an answer");
    assert_eq!(state, Some(JobState::Available));
    let retrying = found(queue, id).await;
    assert_eq!(retrying.state, JobState::Available);
    assert_eq!(retrying.run_at, at(20));
    assert_eq!(retrying.attempts, 1);
    assert_eq!(retrying.last_error.as_deref(), Some("timeout"));
    assert_eq!(retrying.lease_until, None);

    assert!(fetch(queue, "a", 1, 19).await.is_empty(), "not before 20");
    let again = fetch(queue, "a", 1, 20).await;
    assert_eq!(ids(&again), vec![id]);
    assert_eq!(again[0].attempts, 2);
}

async fn an_exhausted_job_is_dead_with_its_last_error(repositories: Repositories) {
    let queue = &repositories.jobs;
    let id = enqueue(queue, &job().with_max_attempts(2).expect("in range")).await;
    fetch(queue, "a", 1, 1).await;
    let first = queue.fail(id, "a", "first", Some(at(5)), at(2)).await;
    assert_eq!(first.expect("an answer"), Some(JobState::Available));
    fetch(queue, "a", 1, 5).await;
    let long = "é".repeat(Job::MAX_ERROR_BYTES);
    let last = queue.fail(id, "a", &long, Some(at(10)), at(6)).await;
    assert_eq!(last.expect("an answer"), Some(JobState::Dead));
    let dead = found(queue, id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.attempts, 2);
    assert_eq!(
        dead.last_error.as_deref(),
        Some(Job::truncate_error(&long)),
        "cut to 2 KiB"
    );
    assert!(fetch(queue, "a", 1, 100).await.is_empty());

    // Without a retry time, a job dies at once, attempts left or not.
    let other = enqueue(queue, &job()).await;
    fetch(queue, "a", 1, 100).await;
    let state = queue
        .fail(other, "a", "invalid payload", None, at(101))
        .await;
    assert_eq!(state.expect("an answer"), Some(JobState::Dead));
}

async fn a_dead_job_is_retried_by_hand(repositories: Repositories) {
    let queue = &repositories.jobs;
    let keyed = || job().with_unique_key("settle:3").expect("a key");
    let id = enqueue(queue, &keyed()).await;
    assert!(
        !queue.retry(id, at(1)).await.expect("an answer"),
        "not dead"
    );
    fetch(queue, "a", 1, 1).await;
    queue
        .fail(id, "a", "broken", None, at(2))
        .await
        .expect("failed");

    // A live job with the same key: retrying would break the key's rule.
    let replacement = enqueue(queue, &keyed()).await;
    assert!(matches!(
        queue.retry(id, at(3)).await,
        Err(RepositoryError::Conflict("unique_key"))
    ));
    assert_eq!(found(queue, id).await.state, JobState::Dead);
    fetch(queue, "a", 1, 3).await;
    assert!(queue.complete(replacement, "a", at(4)).await.expect("done"));

    assert!(queue.retry(id, at(5)).await.expect("retried"));
    let retried = found(queue, id).await;
    assert_eq!(retried.state, JobState::Available);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.run_at, at(5));
    assert_eq!(retried.last_error.as_deref(), Some("broken"));
    assert_eq!(ids(&fetch(queue, "b", 1, 5).await), vec![id]);
    assert!(!queue.retry(self::id(), at(6)).await.expect("an answer"));
}

async fn release_gives_jobs_back_without_counting_the_attempt(repositories: Repositories) {
    let queue = &repositories.jobs;
    let first = enqueue(queue, &job()).await;
    let second = enqueue(queue, &job().with_run_at(at(1))).await;
    assert_eq!(ids(&fetch(queue, "a", 2, 2).await), vec![first, second]);
    assert_eq!(
        queue
            .release(&[first, second], "a")
            .await
            .expect("released"),
        2
    );
    for id in [first, second] {
        let released = found(queue, id).await;
        assert_eq!(released.state, JobState::Available);
        assert_eq!(released.attempts, 0);
        assert_eq!(released.lease_until, None);
    }
    let again = fetch(queue, "b", 2, 3).await;
    assert_eq!(ids(&again), vec![first, second]);
    assert!(again.iter().all(|job| job.attempts == 1));
}

async fn jobs_are_listed_by_state_newest_first_in_pages(repositories: Repositories) {
    let queue = &repositories.jobs;
    let mut all = Vec::new();
    for second in 0..5 {
        let new = NewJob::new(id(), kind("market.settle"), "{}", at(second)).expect("a job");
        all.push(enqueue(queue, &new).await);
    }
    // The two oldest run; the oldest dies.
    assert_eq!(ids(&fetch(queue, "a", 2, 10).await), all[..2].to_vec());
    queue
        .fail(all[0], "a", "broken", None, at(11))
        .await
        .expect("failed");

    let page = |limit, offset| PageRequest::new(limit, offset).expect("a page");
    let everything = queue.list(None, page(2, 0)).await.expect("a list");
    assert_eq!(everything.total, 5);
    assert_eq!(ids(&everything.items), vec![all[4], all[3]]);
    let last = queue.list(None, page(2, 4)).await.expect("a list");
    assert_eq!((ids(&last.items), last.total), (vec![all[0]], 5));

    let available = queue
        .list(Some(JobState::Available), page(2, 0))
        .await
        .expect("a list");
    assert_eq!(
        (ids(&available.items), available.total),
        (vec![all[4], all[3]], 3)
    );
    let available = queue
        .list(Some(JobState::Available), page(2, 2))
        .await
        .expect("a list");
    assert_eq!((ids(&available.items), available.total), (vec![all[2]], 3));
    let running = queue
        .list(Some(JobState::Running), page(10, 0))
        .await
        .expect("a list");
    assert_eq!((ids(&running.items), running.total), (vec![all[1]], 1));
    let dead = queue
        .list(Some(JobState::Dead), page(10, 0))
        .await
        .expect("a list");
    assert_eq!((ids(&dead.items), dead.total), (vec![all[0]], 1));
    let succeeded = queue
        .list(Some(JobState::Succeeded), page(10, 0))
        .await
        .expect("a list");
    assert_eq!((succeeded.items.len(), succeeded.total), (0, 0));
}

async fn a_job_enqueued_in_a_transaction_exists_only_if_it_commits(repositories: Repositories) {
    let queue = &repositories.jobs;
    let rolled_back = job().with_unique_key("settle:9").expect("a key");
    {
        let transaction = repositories.unit_of_work.begin().await.expect("begin");
        let enqueued = transaction.jobs().enqueue(&rolled_back).await;
        assert_eq!(
            enqueued.expect("enqueued"),
            Enqueued::Created(rolled_back.id())
        );
        assert_eq!(
            transaction
                .jobs()
                .find(rolled_back.id())
                .await
                .expect("a read")
                .map(|job| job.id),
            Some(rolled_back.id()),
            "visible inside"
        );
        // Dropped without commit: rolled back.
    }
    assert_eq!(queue.find(rolled_back.id()).await.expect("a read"), None);

    let committed = job().with_unique_key("settle:9").expect("a key");
    let transaction = repositories.unit_of_work.begin().await.expect("begin");
    let enqueued = transaction.jobs().enqueue(&committed).await;
    assert_eq!(
        enqueued.expect("enqueued"),
        Enqueued::Created(committed.id()),
        "the rolled-back job held no key"
    );
    // A duplicate or a taken id inside the transaction does not spoil it.
    let duplicate = job().with_unique_key("settle:9").expect("a key");
    assert_eq!(
        transaction
            .jobs()
            .enqueue(&duplicate)
            .await
            .expect("an answer"),
        Enqueued::Duplicate(committed.id())
    );
    assert!(matches!(
        transaction.jobs().enqueue(&committed).await,
        Err(RepositoryError::Conflict("id"))
    ));
    transaction.commit().await.expect("committed");
    assert_eq!(found(queue, committed.id()).await, committed.into_job());
}

async fn concurrent_fetchers_claim_disjoint_sets_covering_every_job(repositories: Repositories) {
    const JOBS: usize = 200;
    const FETCHERS: usize = 8;
    let queue = &repositories.jobs;
    let mut all = BTreeSet::new();
    for n in 0..JOBS {
        let priority = Priority::ALL[n % 3];
        all.insert(enqueue(queue, &job().with_priority(priority)).await);
    }
    let fetchers: Vec<_> = (0..FETCHERS)
        .map(|n| {
            let queue = Arc::clone(queue);
            tokio::spawn(async move {
                let worker = format!("worker-{n}");
                let mut claimed = Vec::new();
                loop {
                    let batch = fetch(&queue, &worker, 7, 1).await;
                    if batch.is_empty() {
                        return claimed;
                    }
                    assert!(
                        batch
                            .iter()
                            .all(|job| job.worker.as_deref() == Some(&*worker))
                    );
                    claimed.extend(ids(&batch));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for fetcher in fetchers {
        let claimed = fetcher.await.expect("the fetcher finished");
        total += claimed.len();
        seen.extend(claimed);
    }
    assert_eq!(total, JOBS, "no job was claimed twice");
    assert_eq!(seen, all, "every job was claimed");
    let running = queue
        .list(
            Some(JobState::Running),
            PageRequest::new(1, 0).expect("a page"),
        )
        .await
        .expect("a list");
    assert_eq!(running.total, u64::try_from(JOBS).expect("small"));
}

async fn the_oldest_due_job_gives_the_queues_lag(repositories: Repositories) {
    let queue = &repositories.jobs;
    assert_eq!(queue.oldest_due(at(100)).await.expect("a read"), None);
    let early = enqueue(queue, &job().with_run_at(at(10))).await;
    enqueue(queue, &job().with_run_at(at(20))).await;
    enqueue(queue, &job().with_run_at(at(500))).await;
    assert_eq!(
        queue.oldest_due(at(100)).await.expect("a read"),
        Some(at(10)),
        "the earliest due job, not the future one"
    );
    assert_eq!(
        queue.oldest_due(at(5)).await.expect("a read"),
        None,
        "none due yet"
    );
    // A running job is not waiting any more.
    let fetched = fetch(queue, "w1", 1, 100).await;
    assert_eq!(ids(&fetched), vec![early]);
    assert_eq!(
        queue.oldest_due(at(100)).await.expect("a read"),
        Some(at(20))
    );
}
