//! Job bodies and the job list query.

use chrono::{DateTime, Utc};
use domain::{Job, JobState, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::markets::{Problems, whole_number, window};
use crate::error::ApiError;

/// A background job and how far it got.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    pub id: Uuid,
    /// What the job does: `settle_market`, `make_thumbnail`, `welcome_email`, ...
    #[schema(example = "settle_market")]
    pub kind: String,
    /// `available` (waiting, or waiting for a retry), `running`, `succeeded` or `dead` (gave up;
    /// an admin may retry it).
    #[schema(example = "available")]
    pub state: &'static str,
    /// `high`, `normal` or `low`.
    #[schema(example = "normal")]
    pub priority: &'static str,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not to run before this (the next attempt, for a job waiting for a retry).
    pub run_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The job's input.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The user the job acts for.
    pub owner_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Job> for JobResponse {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id.as_uuid(),
            kind: job.kind.as_str().to_owned(),
            state: job.state.as_str(),
            priority: job.priority.as_str(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            last_error: job.last_error.clone(),
            payload: serde_json::from_str(&job.payload)
                .unwrap_or_else(|_| serde_json::Value::String(job.payload.clone())),
            owner_id: job.owner.map(|owner| owner.as_uuid()),
            created_at: job.created_at,
            updated_at: job.updated_at,
        }
    }
}

/// Query parameters of `GET /api/v1/jobs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobListParams {
    /// `available`, `running`, `succeeded` or `dead` (the dead-letter queue); all when absent.
    #[param(pattern = "^(available|running|succeeded|dead)$")]
    pub state: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Rows to skip (default 0, at most 1,000,000). Not together with `page`.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 1_000_000)]
    pub offset: Option<String>,
    /// 1-based page number, at most 10,001. Not together with `offset`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10_001)]
    pub page: Option<String>,
}

impl JobListParams {
    /// The state filter and the page, every invalid parameter reported at once.
    pub fn into_query(self) -> Result<(Option<JobState>, PageRequest), ApiError> {
        let mut problems = Problems::default();
        let state = problems.take("state", self.state.as_deref(), |text| {
            JobState::parse(text).ok_or("must be available, running, succeeded or dead")
        });
        let limit = problems.take("limit", self.limit.as_deref(), whole_number);
        let offset = problems.take("offset", self.offset.as_deref(), whole_number);
        let page_number = problems.take("page", self.page.as_deref(), whole_number);
        let page = window(limit, offset, page_number, &mut problems);
        problems.into_result((state, page))
    }
}
