//! `/health`: liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorBody};

/// How long a readiness probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of the process or of one dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Dependencies checked, by name (readiness only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
}

/// The process is up.
#[utoipa::path(
    get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Envelope<HealthStatus>))
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Envelope::of(HealthStatus {
        status: "ok",
        checks: Vec::new(),
    }))
}

/// Every dependency answers (the database; the cache when configured).
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Envelope<HealthStatus>),
        (status = 503, description = "`service_unavailable`: a dependency is down (named in the message)", body = ErrorBody),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut checks = Vec::with_capacity(state.probes.len());
    for probe in &state.probes {
        match tokio_timeout(probe.check()).await {
            Some(Ok(())) => checks.push(probe.name().to_owned()),
            Some(Err(error)) => return Err(ApiError::service_unavailable(error)),
            None => {
                return Err(ApiError::service_unavailable(format!(
                    "{} did not answer within {PROBE_TIMEOUT:?}",
                    probe.name()
                )));
            }
        }
    }
    Ok(HttpResponse::Ok().json(Envelope::of(HealthStatus {
        status: "ok",
        checks,
    })))
}

async fn tokio_timeout<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
    actix_web::rt::time::timeout(PROBE_TIMEOUT, future)
        .await
        .ok()
}
