//! Prometheus metrics: the registry the whole service records into, the HTTP families the request middleware fills, and `GET /metrics`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::ApiError;

/// Latency buckets in seconds: 0.5 ms doubling to about 16 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_5, 2.0, 16)
}

/// Labels of one request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/api/v1/markets/{id}`), never the raw path, so that ids do not
    /// multiply series; `unmatched` for paths no route declares.
    pub route: String,
    pub status: u16,
}

/// Labels of request latencies.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

/// Values read when `/metrics` is scraped (gauges of queues, caches, connections): the
/// composition root sets them on the registry's families.
#[async_trait]
pub trait MetricsRefresh: Send + Sync {
    async fn refresh(&self);
}

/// The service's registry, and the families the HTTP adapter records into itself.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    rejections: Family<RejectionLabels, Counter>,
    refresh: Option<Arc<dyn MetricsRefresh>>,
}

/// Labels of a request refused before it reached a handler.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// `rate_limited`, ...
    pub reason: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding the HTTP families; other parts register theirs with
    /// [`Metrics::registry`] before it is shared.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "http_request_duration_seconds",
            "Time from the request's arrival to its response, by method and route template",
            latency.clone(),
        );
        let rejections = Family::<RejectionLabels, Counter>::default();
        // Exported at 0 from the start, so that dashboards and alerts find the series.
        rejections
            .get_or_create(&RejectionLabels {
                reason: "rate_limited".to_owned(),
            })
            .inc_by(0);
        registry.register(
            "http_rejections",
            "Requests refused before a handler, by reason (rate_limited)",
            rejections.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            rejections,
            refresh: None,
        }
    }

    /// Where other parts register their families.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Runs `refresh` before every scrape.
    #[must_use]
    pub fn with_refresh(mut self, refresh: Arc<dyn MetricsRefresh>) -> Self {
        self.refresh = Some(refresh);
        self
    }

    /// Records one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a request refused for `reason` before it reached a handler.
    pub fn observe_rejection(&self, reason: &str) {
        self.rejections
            .get_or_create(&RejectionLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The registry in the OpenMetrics text format, refreshed first.
    pub async fn render(&self) -> Result<String, std::fmt::Error> {
        if let Some(refresh) = &self.refresh {
            refresh.refresh().await;
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Every metric of this instance in the Prometheus (OpenMetrics) text format. Not under
/// `/api/v1`: meant for the scraper on the internal network; keep it off the public proxy.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String))
)]
pub async fn scrape(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state.metrics.render().await.map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
