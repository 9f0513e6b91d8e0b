//! The service's metrics beyond HTTP: database statements (and the slow-statement log), cache tiers, the job queue, WebSocket clients, events and build info, registered on the HTTP adapter's registry.

use std::sync::Arc;
use std::time::Duration;

use adapter_http::metrics::{Metrics, MetricsRefresh, latency_buckets};
use adapter_http::stream::MarketStream;
use adapter_persistence::Database;
use application::UseCases;
use application::events::EventCounters;
use async_trait::async_trait;
use domain::{JobState, PageRequest};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// The longest SQL text a slow-statement log line carries.
const SLOW_SQL_CHARS: usize = 500;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Labels of a finished job execution.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcomeLabels {
    pub kind: String,
    /// `succeeded`, `retrying`, `dead` or `lost`.
    pub outcome: &'static str,
}

/// Job executions by kind and outcome, counted by the worker loop of this process.
pub type JobOutcomes = Family<JobOutcomeLabels, Counter>;

/// Registers every family on `metrics` and returns the refresh run before each scrape. Every
/// statement on `database` (and on `background`, the relay's and workers' pool) is timed, and
/// those slower than `slow` are logged with their SQL (placeholders only, never values).
pub fn register(
    metrics: &mut Metrics,
    databases: [&Database; 2],
    slow: Duration,
    use_cases: &UseCases,
    stream: MarketStream,
    events: EventCounters,
    job_outcomes: &JobOutcomes,
) -> Arc<dyn MetricsRefresh> {
    let registry = metrics.registry();
    let statements = Family::<OutcomeLabels, Counter>::default();
    registry.register(
        "db_statements",
        "SQL statements run, by outcome (ok, failed)",
        statements.clone(),
    );
    let statement_time = Histogram::new(latency_buckets());
    registry.register(
        "db_statement_duration_seconds",
        "Time each SQL statement took",
        statement_time.clone(),
    );
    let observer: adapter_persistence::StatementObserver =
        Arc::new(move |elapsed: Duration, failed: bool, sql: &str| {
            let outcome = if failed { "failed" } else { "ok" };
            statements.get_or_create(&OutcomeLabels { outcome }).inc();
            statement_time.observe(elapsed.as_secs_f64());
            if elapsed >= slow {
                let sql: String = sql.chars().take(SLOW_SQL_CHARS).collect();
                tracing::warn!(
                    elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                    failed,
                    %sql,
                    "slow statement"
                );
            }
        });
    for database in databases {
        database.observe_statements(Arc::clone(&observer));
    }

    registry.register(
        "jobs_finished",
        "Job executions finished by this process's workers, by kind and outcome (succeeded, retrying, dead, lost)",
        job_outcomes.clone(),
    );
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    registry.register("build_info", "The running build (always 1)", build);

    let refresh = ScrapeTime::default();
    let registry = metrics.registry();
    registry.register(
        "cache_hits",
        "Cache reads answered, by tier (memory, redis)",
        refresh.cache_hits.clone(),
    );
    registry.register(
        "cache_misses",
        "Cache reads not answered, by tier",
        refresh.cache_misses.clone(),
    );
    registry.register(
        "cache_errors",
        "Cache operations that failed or were skipped by the circuit breaker, by tier",
        refresh.cache_errors.clone(),
    );
    registry.register(
        "jobs",
        "Jobs in the queue by state: available is the backlog, dead the dead-letter queue",
        refresh.jobs.clone(),
    );
    registry.register(
        "websocket_connections",
        "Clients of the market stream on this instance",
        refresh.websocket_connections.clone(),
    );
    registry.register(
        "events_received",
        "Domain events this instance received from the bus, by type",
        refresh.events.clone(),
    );
    Arc::new(ScrapeTime {
        use_cases: Some(use_cases.clone()),
        stream: Some(stream),
        event_counters: Some(events),
        ..refresh
    })
}

/// Values read at scrape time.
#[derive(Default)]
struct ScrapeTime {
    use_cases: Option<UseCases>,
    stream: Option<MarketStream>,
    event_counters: Option<EventCounters>,
    cache_hits: Family<TierLabels, Counter>,
    cache_misses: Family<TierLabels, Counter>,
    cache_errors: Family<TierLabels, Counter>,
    jobs: Family<StateLabels, Gauge>,
    websocket_connections: Gauge,
    events: Family<TypeLabels, Counter>,
}

/// Moves a counter up to `total`, a running total kept elsewhere.
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

#[async_trait]
impl MetricsRefresh for ScrapeTime {
    async fn refresh(&self) {
        if let Some(use_cases) = &self.use_cases {
            for tier in use_cases.deps().cached_markets.stats() {
                let labels = TierLabels { tier: tier.tier };
                catch_up(&self.cache_hits.get_or_create(&labels), tier.hits);
                catch_up(&self.cache_misses.get_or_create(&labels), tier.misses);
                catch_up(&self.cache_errors.get_or_create(&labels), tier.errors);
            }
            let one = PageRequest::new(1, 0).unwrap_or_default();
            for state in JobState::ALL {
                match use_cases.deps().jobs.list(Some(state), one).await {
                    Ok(page) => {
                        self.jobs
                            .get_or_create(&StateLabels {
                                state: state.as_str(),
                            })
                            .set(i64::try_from(page.total).unwrap_or(i64::MAX));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "counting jobs for metrics failed");
                        break;
                    }
                }
            }
        }
        if let Some(stream) = &self.stream {
            self.websocket_connections
                .set(i64::try_from(stream.connections()).unwrap_or(i64::MAX));
        }
        if let Some(events) = &self.event_counters {
            for (r#type, total) in events.snapshot() {
                catch_up(&self.events.get_or_create(&TypeLabels { r#type }), total);
            }
        }
    }
}
