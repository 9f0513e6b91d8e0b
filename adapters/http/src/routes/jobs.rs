//! Jobs: the dead-letter queue and every other state for admins, and a job's progress for its owner.

use actix_web::{HttpResponse, web};
use domain::JobId;
use uuid::Uuid;

use crate::AppState;
use crate::dto::jobs::{JobListParams, JobResponse};
use crate::envelope::{Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorBody};
use crate::extract::AuthUser;

/// List jobs, newest first, by state (`state=dead` is the dead-letter queue); admins only.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    params(JobListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of jobs", body = ListEnvelope<JobResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed` (state, paging)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn list_jobs(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    params: web::Query<JobListParams>,
) -> Result<HttpResponse, ApiError> {
    let (job_state, page) = params.into_inner().into_query()?;
    let jobs = state.use_cases.list_jobs(&actor, job_state, page).await?;
    Ok(HttpResponse::Ok().json(ListEnvelope::of(jobs.map(|job| JobResponse::from(&job)))))
}

/// A job: its state, attempts and last error. For the user it acts for (the uploader of an
/// image, say) and for admins; anyone else gets 404.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = Envelope<JobResponse>),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job, or not yours", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn get_job(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = state
        .use_cases
        .get_job(&actor, JobId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(Envelope::of(JobResponse::from(&job))))
}

/// Retry a dead job: it becomes available again with fresh attempts. Admins only.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job, available again", body = Envelope<JobResponse>),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = ErrorBody),
        (status = 409, description = "`job_not_dead`: only dead jobs are retried; `conflict`: a live job does the same work", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn retry_job(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = state
        .use_cases
        .retry_job(&actor, JobId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(Envelope::of(JobResponse::from(&job))))
}
