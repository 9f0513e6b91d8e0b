//! Jobs as people see them: an admin lists jobs and replays dead letters; the owner of a job follows its state.

use domain::access::AccessDenied;
use domain::ports::RepositoryError;
use domain::{Actor, Job, JobId, JobState, Page, PageRequest, Permission};

use crate::{Unavailable, UseCases};

/// Why a job could not be listed, read or retried.
#[derive(Debug, thiserror::Error)]
pub enum JobStatusError {
    /// No such job, or one the caller may not see (its existence is not revealed).
    #[error("no such job")]
    NotFound,
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    /// Only a dead job can be retried.
    #[error("the job is {0}, not dead: only dead jobs can be retried")]
    NotDead(JobState),
    /// A live job holds the same unique key (e.g. a settlement of the same market was queued
    /// since): retrying would run the work twice.
    #[error("another live job does the same work")]
    Duplicate,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl From<RepositoryError> for JobStatusError {
    fn from(error: RepositoryError) -> Self {
        Self::Unavailable(error.into())
    }
}

impl UseCases {
    /// One page of the jobs in `state` (all with `None`), newest first; admins only.
    ///
    /// # Errors
    /// [`JobStatusError::Forbidden`] for anyone but an admin, or `Unavailable`.
    pub async fn list_jobs(
        &self,
        actor: &Actor,
        state: Option<JobState>,
        page: PageRequest,
    ) -> Result<Page<Job>, JobStatusError> {
        actor.require(Permission::Admin)?;
        Ok(self.deps().jobs.list(state, page).await?)
    }

    /// A job, for its owner and for admins; [`JobStatusError::NotFound`] for anyone else, so
    /// that job ids reveal nothing.
    ///
    /// # Errors
    /// [`JobStatusError::NotFound`] or `Unavailable`.
    pub async fn get_job(&self, actor: &Actor, id: JobId) -> Result<Job, JobStatusError> {
        let job = self
            .deps()
            .jobs
            .find(id)
            .await?
            .ok_or(JobStatusError::NotFound)?;
        if actor.may_see_job(job.owner).is_ok() {
            Ok(job)
        } else {
            Err(JobStatusError::NotFound)
        }
    }

    /// Makes a dead job available again with fresh attempts (it keeps its last error until it
    /// runs); admins only.
    ///
    /// # Errors
    /// [`JobStatusError`]: forbidden, not found, not dead, a duplicate of a live job, or
    /// unavailable.
    pub async fn retry_job(&self, actor: &Actor, id: JobId) -> Result<Job, JobStatusError> {
        actor.require(Permission::Admin)?;
        let jobs = &self.deps().jobs;
        match jobs.retry(id, self.deps().clock.now()).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(match jobs.find(id).await? {
                    Some(job) => JobStatusError::NotDead(job.state),
                    None => JobStatusError::NotFound,
                });
            }
            Err(RepositoryError::Conflict(_)) => return Err(JobStatusError::Duplicate),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(job = %id, admin = %actor.user_id, "dead job retried");
        jobs.find(id).await?.ok_or(JobStatusError::NotFound)
    }
}
