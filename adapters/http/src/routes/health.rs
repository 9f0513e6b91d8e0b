//! `/health`: liveness and readiness (503 from the moment the process starts draining).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorBody};

/// How long a readiness probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the process is shutting down: once set, readiness fails so that load balancers stop
/// sending new requests while the ones in flight finish.
#[derive(Debug, Default)]
pub struct Draining(AtomicBool);

impl Draining {
    /// From now on, readiness answers 503.
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The state of the process or of one dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok`, or `degraded` when an optional dependency does not answer.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Dependencies that answered, by name (readiness only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Optional dependencies that did not answer (the service works without them, slower).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
    /// How market search runs (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSetup>,
}

/// Which embedder and vector index market search uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchSetup {
    /// The embedder's name.
    #[schema(example = "local-hashed-ngrams-256")]
    pub embedder: String,
    /// `in-process exact` or `pgvector hnsw`.
    #[schema(example = "in-process exact")]
    pub vector_index: &'static str,
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
        degraded: Vec::new(),
        search: None,
    }))
}

/// Every required dependency answers (the database); optional ones (Redis) that do not are listed
/// as `degraded` without failing readiness.
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready; `status` is `degraded` when an optional dependency is down", body = Envelope<HealthStatus>),
        (status = 503, description = "`service_unavailable`: a required dependency is down, or the process is shutting down", body = ErrorBody),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_draining() {
        return Err(ApiError::service_unavailable(ShuttingDown));
    }
    let search = &state.use_cases.deps().search;
    let mut checks = Vec::with_capacity(state.probes.len());
    let mut degraded = Vec::new();
    for probe in &state.probes {
        let failure = match tokio_timeout(probe.check()).await {
            Some(Ok(())) => {
                checks.push(probe.name().to_owned());
                continue;
            }
            Some(Err(error)) => error.to_string(),
            None => format!("{} did not answer within {PROBE_TIMEOUT:?}", probe.name()),
        };
        if probe.required() {
            return Err(ApiError::service_unavailable(failure));
        }
        tracing::warn!(dependency = probe.name(), %failure, "optional dependency down");
        degraded.push(probe.name().to_owned());
    }
    Ok(HttpResponse::Ok().json(Envelope::of(HealthStatus {
        status: if degraded.is_empty() {
            "ok"
        } else {
            "degraded"
        },
        checks,
        degraded,
        search: Some(SearchSetup {
            embedder: search.embedder.name(),
            vector_index: search.vectors.kind(),
        }),
    })))
}

async fn tokio_timeout<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
    actix_web::rt::time::timeout(PROBE_TIMEOUT, future)
        .await
        .ok()
}

/// Readiness refused while the process drains.
#[derive(Debug, thiserror::Error)]
#[error("the process is shutting down")]
struct ShuttingDown;
