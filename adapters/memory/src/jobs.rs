//! `InMemoryJobQueue`: the job queue in the store's shared state, so that a transaction's enqueues commit with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::listing::{Page, PageRequest};
use domain::ports::{Enqueued, JobQueue, RepositoryError};
use domain::{Job, JobId, JobKind, JobState, NewJob};

use crate::failure::OutageSwitch;
use crate::paging::window;
use crate::store::{Scope, State};

/// Every job of a store, by id.
pub(crate) type Jobs = BTreeMap<JobId, Job>;

/// What `last_error` says of a job whose lease ran out on its last attempt.
const LEASE_EXPIRED: &str = "the worker's lease expired on the last attempt";

/// The domain's [`JobQueue`] over the jobs of an [`crate::InMemoryStore`], or of one of its
/// transactions.
///
/// Writes outside a transaction take the store's writer turn (so `fetch` waits for an open
/// transaction, and concurrent fetchers run one at a time and never share a job); inside one
/// they change the working copy, committed or discarded with it.
#[derive(Debug)]
pub struct InMemoryJobQueue {
    scope: Scope,
    outage: OutageSwitch,
}

impl InMemoryJobQueue {
    pub(crate) fn in_scope(scope: Scope) -> Self {
        Self {
            scope,
            outage: OutageSwitch::default(),
        }
    }

    /// While `true`, every operation of this queue fails with [`RepositoryError::Unavailable`]
    /// and changes nothing. [`crate::InMemoryStore::set_unavailable`] switches the whole store off.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.outage.set(unavailable);
    }

    async fn write<R>(
        &self,
        write: impl FnOnce(&mut Jobs) -> Result<R, RepositoryError> + Send,
    ) -> Result<R, RepositoryError> {
        self.outage.check()?;
        self.scope
            .write(|state: &mut State| write(Arc::make_mut(&mut state.jobs)))
            .await
    }

    fn read<R>(&self, read: impl FnOnce(&Jobs) -> R) -> Result<R, RepositoryError> {
        self.outage.check()?;
        self.scope.read(|state| read(&state.jobs))
    }
}

/// Whether `job` is running for `worker`.
fn held_by(job: &Job, worker: &str) -> bool {
    job.state == JobState::Running && job.worker.as_deref() == Some(worker)
}

#[async_trait]
impl JobQueue for InMemoryJobQueue {
    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, RepositoryError> {
        self.write(|jobs| {
            if jobs.contains_key(&job.id()) {
                return Err(RepositoryError::Conflict("id"));
            }
            if let Some(key) = job.unique_key() {
                let live = jobs.values().find(|stored| {
                    stored.state.is_live() && stored.unique_key.as_deref() == Some(key)
                });
                if let Some(live) = live {
                    return Ok(Enqueued::Duplicate(live.id));
                }
            }
            jobs.insert(job.id(), job.clone().into_job());
            Ok(Enqueued::Created(job.id()))
        })
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
        if kinds.is_empty() || limit == 0 {
            return self.read(|_| Vec::new());
        }
        self.write(|jobs| {
            let expired = |job: &Job| {
                job.state == JobState::Running
                    && job.lease_until.is_some_and(|until| until < now)
                    && kinds.contains(&job.kind)
            };
            for job in jobs.values_mut() {
                if expired(job) && job.attempts >= job.max_attempts {
                    job.state = JobState::Dead;
                    job.lease_until = None;
                    job.last_error = Some(LEASE_EXPIRED.to_owned());
                    job.updated_at = now;
                }
            }
            let mut due: Vec<&Job> = jobs
                .values()
                .filter(|job| {
                    (job.state == JobState::Available
                        && job.run_at <= now
                        && kinds.contains(&job.kind))
                        || expired(job)
                })
                .collect();
            due.sort_by_key(|job| (job.priority, job.run_at, job.id));
            let chosen: Vec<JobId> = due
                .into_iter()
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|job| job.id)
                .collect();
            let mut claimed = Vec::with_capacity(chosen.len());
            for id in chosen {
                if let Some(job) = jobs.get_mut(&id) {
                    job.state = JobState::Running;
                    job.worker = Some(worker.to_owned());
                    job.lease_until = Some(lease_until);
                    job.attempts += 1;
                    job.updated_at = now;
                    claimed.push(job.clone());
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn heartbeat(
        &self,
        ids: &[JobId],
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<JobId>, RepositoryError> {
        self.write(|jobs| {
            let mut held = Vec::new();
            for id in ids {
                if let Some(job) = jobs.get_mut(id).filter(|job| held_by(job, worker)) {
                    job.lease_until = Some(lease_until);
                    held.push(*id);
                }
            }
            held.sort();
            held.dedup();
            Ok(held)
        })
        .await
    }

    async fn complete(
        &self,
        id: JobId,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.write(|jobs| {
            let Some(job) = jobs.get_mut(&id).filter(|job| held_by(job, worker)) else {
                return Ok(false);
            };
            job.state = JobState::Succeeded;
            job.lease_until = None;
            job.updated_at = now;
            Ok(true)
        })
        .await
    }

    async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<JobState>, RepositoryError> {
        self.write(|jobs| {
            let Some(job) = jobs.get_mut(&id).filter(|job| held_by(job, worker)) else {
                return Ok(None);
            };
            match retry_at.filter(|_| job.attempts < job.max_attempts) {
                Some(retry_at) => {
                    job.state = JobState::Available;
                    job.run_at = retry_at;
                }
                None => job.state = JobState::Dead,
            }
            job.lease_until = None;
            job.last_error = Some(Job::truncate_error(error).to_owned());
            job.updated_at = now;
            Ok(Some(job.state))
        })
        .await
    }

    async fn release(&self, ids: &[JobId], worker: &str) -> Result<u64, RepositoryError> {
        self.write(|jobs| {
            let mut released = 0;
            for id in ids {
                if let Some(job) = jobs.get_mut(id).filter(|job| held_by(job, worker)) {
                    job.state = JobState::Available;
                    job.lease_until = None;
                    job.worker = None;
                    job.attempts = job.attempts.saturating_sub(1);
                    released += 1;
                }
            }
            Ok(released)
        })
        .await
    }

    async fn find(&self, id: JobId) -> Result<Option<Job>, RepositoryError> {
        self.read(|jobs| jobs.get(&id).cloned())
    }

    async fn list(
        &self,
        state: Option<JobState>,
        page: PageRequest,
    ) -> Result<Page<Job>, RepositoryError> {
        self.read(|jobs| {
            let mut matching: Vec<Job> = jobs
                .values()
                .filter(|job| state.is_none_or(|state| job.state == state))
                .cloned()
                .collect();
            matching.sort_by_key(|job| std::cmp::Reverse((job.created_at, job.id)));
            window(matching, page)
        })
    }

    async fn oldest_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        self.read(|jobs| {
            jobs.values()
                .filter(|job| job.state == JobState::Available && job.run_at <= now)
                .map(|job| job.run_at)
                .min()
        })
    }

    async fn retry(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, RepositoryError> {
        self.write(|jobs| {
            let Some(job) = jobs.get(&id).filter(|job| job.state == JobState::Dead) else {
                return Ok(false);
            };
            if let Some(key) = job.unique_key.as_deref() {
                let taken = jobs
                    .values()
                    .any(|other| other.state.is_live() && other.unique_key.as_deref() == Some(key));
                if taken {
                    return Err(RepositoryError::Conflict("unique_key"));
                }
            }
            if let Some(job) = jobs.get_mut(&id) {
                job.state = JobState::Available;
                job.attempts = 0;
                job.run_at = now;
                job.lease_until = None;
                job.worker = None;
                job.updated_at = now;
            }
            Ok(true)
        })
        .await
    }
}
