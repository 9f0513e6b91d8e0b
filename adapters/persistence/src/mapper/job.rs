//! `Job` to and from a `jobs` row.

use domain::{Job, JobId, JobKind, JobState, NewJob, Priority, UserId};
use sea_orm::ActiveValue::Set;

use super::stored;
use crate::entity::jobs;
use crate::error::CorruptRow;

const TABLE: &str = "jobs";

/// The row that stores a newly enqueued `job`.
pub(crate) fn to_active_model(job: &NewJob) -> jobs::ActiveModel {
    let created_at = stored(job.created_at());
    jobs::ActiveModel {
        id: Set(job.id().as_uuid()),
        kind: Set(job.kind().as_str().to_owned()),
        payload: Set(job.payload().to_owned()),
        priority: Set(job.priority().rank()),
        state: Set(JobState::Available.as_str().to_owned()),
        attempts: Set(0),
        // 1..=100, checked by `NewJob`.
        max_attempts: Set(i32::try_from(job.max_attempts()).unwrap_or(i32::MAX)),
        run_at: Set(stored(job.run_at())),
        lease_until: Set(None),
        worker: Set(None),
        last_error: Set(None),
        unique_key: Set(job.unique_key().map(str::to_owned)),
        owner: Set(job.owner().map(|owner| owner.as_uuid())),
        created_at: Set(created_at),
        updated_at: Set(created_at),
    }
}

/// The job a row stores.
///
/// # Errors
/// [`CorruptRow`] when a column does not hold a valid value.
pub(crate) fn to_domain(row: jobs::Model) -> Result<Job, CorruptRow> {
    let id = row.id;
    let count = |value: i32, column: &'static str| {
        u32::try_from(value).map_err(CorruptRow::at(TABLE, id, column))
    };
    Ok(Job {
        id: JobId::from_uuid(id),
        kind: JobKind::parse(&row.kind).map_err(CorruptRow::at(TABLE, id, "kind"))?,
        payload: row.payload,
        priority: Priority::from_rank(row.priority)
            .ok_or("not 0, 1 or 2")
            .map_err(CorruptRow::at(TABLE, id, "priority"))?,
        state: JobState::parse(&row.state)
            .ok_or("not a job state")
            .map_err(CorruptRow::at(TABLE, id, "state"))?,
        attempts: count(row.attempts, "attempts")?,
        max_attempts: count(row.max_attempts, "max_attempts")?,
        run_at: row.run_at,
        lease_until: row.lease_until,
        worker: row.worker,
        last_error: row.last_error,
        unique_key: row.unique_key,
        owner: row.owner.map(UserId::from_uuid),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
