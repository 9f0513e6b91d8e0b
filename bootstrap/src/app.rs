//! The composition root: builds every adapter from configuration, wires the use cases and starts
//! the HTTP server. Tests use [`Application::build`] to spawn the real thing on port 0.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Compress, Condition, from_fn};
use actix_web::{App, HttpServer, web};
use adapter_blobs::LocalBlobStore;
use adapter_cache::{InProcessCache, RedisCacheConfig, RedisProbe, TieredCache, TieredCacheConfig};
use adapter_crypto::{Argon2Hasher, HashingConfig, JwtConfig, JwtIssuer, RandomSecrets};
use adapter_events::{InProcessEventBus, RedisEventBus, RedisEventBusConfig};
use adapter_http::metrics::Metrics;
use adapter_http::rate_limit::{RateLimits, RatePolicies, TrustedProxies};
use adapter_http::rendering::JsonMarketRenderer;
use adapter_http::request_context::request_context;
use adapter_http::routes::health::Draining;
use adapter_http::session_cookie::SessionCookie;
use adapter_http::stream::{MarketStream, StreamSettings};
use adapter_http::{AppState, HttpLimits};
use adapter_memory::{InProcessRecentWrites, SystemClock, UuidV7Generator};
use adapter_persistence::{
    ConnectError, Database, DatabaseProbe, PgVectorIndex, PgVectorUnavailable, PoolOptions,
    SeaIdempotencyStore, SeaJobQueue, SeaKeywordSearch, SeaMarketRepository, SeaOutbox,
    SeaPositionRepository, SeaRelayCursors, SeaSessionRepository, SeaUnitOfWork, SeaUserRepository,
};
use adapter_ratelimit::{
    FallbackRateLimiter, InProcessRateLimiter, RedisRateLimiter, RedisRateLimiterConfig,
};
use adapter_search::{InProcessVectorIndex, LocalEmbedder, OpenAiEmbedder, OpenAiSettings};
use application::caching::{CachePolicy, CachedMarketRepository};
use application::events::{EventCounters, Relay, RelaySettings};
use application::jobs::{QueueLagProbe, Worker, WorkerSettings};
use application::markets::{
    CloseEndedMarketsHandler, SearchEngine, SettleMarketHandler, ThumbnailHandler,
};
use application::notifications::{ResolutionNoticeHandler, WelcomeEmailHandler};
use application::sessions::{SessionCache, SignInThrottle};
use application::{Deps, Settings, UseCases};
use backon::{ExponentialBuilder, Retryable};
use domain::RetryPolicy;
use domain::ports::{
    Cache, Clock, EmbeddingProvider, EventBus, HealthProbe, InvalidQuota, Mailer, MarketRepository,
    Quota, RateLimiter, VectorIndex,
};
use secrecy::ExposeSecret;

use crate::config::{Config, EmbedderKind, VectorIndexKind};

/// Why the application could not start. Each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot prepare the SQLite folder {path}")]
    SqliteFolder {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot connect to the database")]
    Database(#[from] adapter_persistence::ConnectError),
    #[error("cannot apply database migrations")]
    Migrate(#[from] adapter_persistence::MigrateError),
    #[error(
        "the database schema is behind: {0} pending migration(s); run `server migrate` first (`serve` without --no-migrate applies them itself)"
    )]
    SchemaBehind(usize),
    #[error("cannot set up password hashing")]
    Hasher(#[source] domain::ports::HashError),
    #[error("cannot set up email: {0}")]
    Mail(String),
    #[error("cannot set up access tokens")]
    Tokens(#[from] adapter_crypto::JwtConfigError),
    /// `key` names the configuration key that names `path`, as in configuration errors
    /// (`APP_HTTP__TLS_CERT_PATH (http.tls_cert_path)`).
    #[error("cannot set up TLS: {key} = {path}: {message}")]
    Tls {
        key: &'static str,
        path: String,
        message: String,
    },
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        cause: std::io::Error,
    },
}

/// The TLS settings of the listener: the certificate chain in `cert` and its private key in `key`
/// (PEM files), TLS 1.2 and 1.3 on the ring provider (named explicitly, so that nothing depends on
/// a process-wide default provider). actix adds the ALPN protocols (h2, http/1.1).
///
/// # Errors
/// [`StartError::Tls`] naming the key and file that cannot be read or used.
fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, StartError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let cert_error = |message: String| StartError::Tls {
        key: "APP_HTTP__TLS_CERT_PATH (http.tls_cert_path)",
        path: cert.display().to_string(),
        message,
    };
    let key_error = |message: String| StartError::Tls {
        key: "APP_HTTP__TLS_KEY_PATH (http.tls_key_path)",
        path: key.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|error| cert_error(pem_message(&error)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| cert_error(pem_message(&error)))?;
    if chain.is_empty() {
        return Err(cert_error(
            "no certificate in the file (expected PEM `BEGIN CERTIFICATE` blocks)".to_owned(),
        ));
    }
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|error| key_error(pem_message(&error)))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| cert_error(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| {
            key_error(format!(
                "cannot be used with the certificate of http.tls_cert_path: {error}"
            ))
        })
}

/// A PEM reading error in words.
fn pem_message(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(cause) => format!("cannot read the file: {cause}"),
        Error::NoItemsFound => {
            "no private key in the file (expected a PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block)"
                .to_owned()
        }
        other => format!("not valid PEM: {other}"),
    }
}

/// Opens the database pools the configuration names, creating the SQLite folder if needed.
///
/// # Errors
/// [`StartError::SqliteFolder`] or [`StartError::Database`].
pub async fn open_database(config: &Config) -> Result<Database, StartError> {
    open_pools(config, config.database.max_connections, true).await
}

/// Connections for background work (the outbox relay, the job workers), apart from the request pools so that
/// neither starves the other; on the primary only.
///
/// # Errors
/// [`StartError::Database`].
pub async fn open_background_database(config: &Config) -> Result<Database, StartError> {
    open_pools(config, BACKGROUND_CONNECTIONS, false).await
}

/// Connections of the background pool: the outbox relay, and the job workers' fetches,
/// heartbeats and outcomes.
const BACKGROUND_CONNECTIONS: u32 = 4;

async fn open_pools(
    config: &Config,
    max_connections: u32,
    with_replica: bool,
) -> Result<Database, StartError> {
    config
        .database
        .ensure_sqlite_dir()
        .map_err(|cause| StartError::SqliteFolder {
            path: config
                .database
                .sqlite_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            cause,
        })?;
    let pool = PoolOptions {
        max_connections,
        min_connections: config.database.min_connections.min(max_connections),
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
        idle_timeout: Some(Duration::from_secs(config.database.idle_timeout_secs)),
        statement_timeout: (config.database.statement_timeout_ms > 0)
            .then(|| Duration::from_millis(config.database.statement_timeout_ms)),
        ..PoolOptions::default()
    };
    let connect = || {
        adapter_persistence::connect(
            config.database.url.expose_secret(),
            config
                .database
                .read_url
                .as_ref()
                .filter(|_| with_replica)
                .map(|url| url.expose_secret()),
            &pool,
        )
    };
    // A database that is not up yet (containers starting together) is waited for; a bad URL is
    // not.
    let patience = Duration::from_secs(config.database.connect_retry_secs);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_total_delay(Some(patience))
        .without_max_times();
    Ok(connect
        .retry(backoff)
        .when(|error| {
            !patience.is_zero()
                && matches!(error, ConnectError::Primary(_) | ConnectError::Replica(_))
        })
        .notify(|error, wait| {
            tracing::warn!(%error, retry_in_ms = wait.as_millis(), "the database is not reachable yet");
        })
        .await?)
}

/// Builds the use cases on top of an open database and, when configured, the Redis cache.
///
/// # Errors
/// [`StartError`] for bad business settings, hashing or token configuration.
pub async fn use_cases(
    config: &Config,
    database: &Database,
    redis: Option<&TieredCache>,
    limiter: Option<Arc<dyn RateLimiter>>,
) -> Result<UseCases, StartError> {
    let sign_in_throttle = match limiter {
        Some(limiter) => Some(SignInThrottle {
            limiter,
            per_account: Quota::per_hour(config.rate_limit.sign_in_per_account_per_hour).map_err(
                |error| {
                    StartError::Config(format!("rate_limit.sign_in_per_account_per_hour: {error}"))
                },
            )?,
        }),
        None => None,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (secret, ephemeral) = config.jwt_secret_or_ephemeral();
    if ephemeral {
        tracing::warn!(
            "JWT_SECRET is not set: using an ephemeral secret; tokens stop working on restart \
             and are not shared between instances"
        );
    }
    let tokens = JwtIssuer::new(
        &JwtConfig::new(
            secret,
            config.auth.jwt_issuer.clone(),
            config.auth.jwt_audience.clone(),
        )
        .with_ttl(Duration::from_secs(config.auth.access_token_ttl_secs)),
        Arc::clone(&clock),
    )?;
    let hasher = Argon2Hasher::new(&HashingConfig {
        memory_kib: config.auth.argon2_memory_kib,
        iterations: config.auth.argon2_iterations,
        parallelism: config.auth.argon2_parallelism,
        max_concurrent: config.auth.effective_hash_concurrency(),
    })
    .map_err(StartError::Hasher)?;
    let starting_balance = config
        .markets
        .starting_balance_amount()
        .map_err(|e| StartError::Config(format!("APP_MARKETS__STARTING_BALANCE: {e}")))?;
    let read_your_writes = Duration::from_millis(config.database.read_your_writes_ms);
    let markets: Arc<dyn MarketRepository> =
        Arc::new(SeaMarketRepository::on_primary(database.clone()));
    Ok(UseCases::new(
        Deps {
            users: Arc::new(SeaUserRepository::new(database.clone())),
            cached_markets: cached_markets(config, Arc::clone(&markets), redis),
            markets,
            market_reads: Arc::new(SeaMarketRepository::new(database.clone())),
            positions: Arc::new(SeaPositionRepository::on_primary(database.clone())),
            position_reads: Arc::new(SeaPositionRepository::new(database.clone())),
            unit_of_work: Arc::new(SeaUnitOfWork::new(database.clone())),
            idempotency: Arc::new(SeaIdempotencyStore::new(database.clone())),
            jobs: Arc::new(SeaJobQueue::new(database.clone())),
            sessions: Arc::new(SeaSessionRepository::new(database.clone())),
            session_cache: SessionCache::new(Duration::from_millis(
                config.auth.session_check_ttl_ms,
            )),
            secrets: Arc::new(RandomSecrets),
            sign_in_throttle,
            recent_writes: Arc::new(InProcessRecentWrites::new(read_your_writes)),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            clock,
            ids: Arc::new(UuidV7Generator),
            blobs: Arc::new(LocalBlobStore::new(&config.uploads.dir)),
            search: search_engine(config, database).await?,
        },
        Settings {
            starting_balance,
            read_your_writes,
            idempotency_ttl: Duration::from_secs(config.http.idempotency_ttl_secs),
            idempotency_lease: Duration::from_secs(config.http.idempotency_lease_secs),
            settlement_batch: config.jobs.settlement_batch,
            max_image_bytes: config.uploads.max_image_bytes,
            sessions: config.auth.session_settings(),
        },
    ))
}

/// Market search as configured: keyword search in the database, the embedder of
/// `search.embedder`, and the vector index of `search.vector_index` (pgvector when it can be
/// used, else in process, for `auto`).
///
/// # Errors
/// [`StartError::Config`] when the embeddings client cannot be built, or when
/// `search.vector_index = "pgvector"` and pgvector cannot be used.
async fn search_engine(config: &Config, database: &Database) -> Result<SearchEngine, StartError> {
    let settings = &config.search;
    let embedder: Arc<dyn EmbeddingProvider> = match settings.embedder {
        EmbedderKind::Local => Arc::new(LocalEmbedder),
        EmbedderKind::Openai => Arc::new(
            OpenAiEmbedder::new(OpenAiSettings {
                base_url: settings.base_url.clone(),
                model: settings.model.clone(),
                api_key: settings.api_key.clone(),
                dimensions: settings.dimensions,
                timeout: Duration::from_millis(settings.timeout_ms),
                retries: settings.retries,
            })
            .map_err(|error| StartError::Config(format!("search: {error}")))?,
        ),
    };
    let in_process =
        || -> Arc<dyn VectorIndex> { Arc::new(InProcessVectorIndex::new(embedder.dimensions())) };
    let vectors = match settings.vector_index {
        VectorIndexKind::Memory => in_process(),
        VectorIndexKind::Pgvector | VectorIndexKind::Auto => {
            match PgVectorIndex::open(database.clone(), embedder.dimensions(), &embedder.name())
                .await
            {
                Ok(index) => Arc::new(index),
                Err(error) if settings.vector_index == VectorIndexKind::Auto => {
                    if !matches!(error, PgVectorUnavailable::NotPostgres) {
                        tracing::info!(reason = %error, "pgvector is not used; market search keeps its vectors in process");
                    }
                    in_process()
                }
                Err(error) => {
                    return Err(StartError::Config(format!(
                        "search.vector_index = \"pgvector\": {error}"
                    )));
                }
            }
        }
    };
    Ok(SearchEngine {
        keywords: Arc::new(SeaKeywordSearch::new(database.clone())),
        vectors,
        embedder,
    })
}

/// Market reads as configured: through the in-process cache, through it in front of Redis when
/// `REDIS_URL` is set, or uncached when `cache.enabled` is false.
///
/// Needs a Tokio runtime with Redis (the tiered cache's subscriber runs on it).
fn cached_markets(
    config: &Config,
    markets: Arc<dyn MarketRepository>,
    redis: Option<&TieredCache>,
) -> CachedMarketRepository {
    let settings = &config.cache;
    let renderer = Arc::new(JsonMarketRenderer);
    if !settings.enabled {
        tracing::info!("market reads are not cached (cache.enabled = false)");
        return CachedMarketRepository::uncached(markets, renderer);
    }
    let cache: Arc<dyn Cache> = match redis {
        None => Arc::new(InProcessCache::new(settings.memory_max_bytes)),
        Some(tiered) => Arc::new(tiered.clone()),
    };
    let policy = CachePolicy {
        market_ttl: Duration::from_secs(settings.market_ttl_secs),
        list_ttl: Duration::from_secs(settings.list_ttl_secs),
        not_found_ttl: Duration::from_secs(settings.not_found_ttl_secs),
        jitter: f64::from(u32::try_from(settings.jitter_percent).unwrap_or(0)) / 100.0,
    };
    CachedMarketRepository::new(markets, cache, renderer, policy)
}

/// The two-tier cache on `REDIS_URL`, when it is set: market reads go through it (unless caching
/// is off) and readiness reports whether Redis answers.
///
/// # Errors
/// [`StartError::Config`] when the URL cannot be used.
pub fn redis_cache(config: &Config) -> Result<Option<TieredCache>, StartError> {
    let Some(url) = &config.redis.url else {
        return Ok(None);
    };
    let settings = &config.cache;
    TieredCache::connect(
        url.expose_secret(),
        RedisCacheConfig {
            key_prefix: config.redis.key_prefix.clone(),
            pool_size: settings.redis_pool_size,
            connect_timeout: Duration::from_millis(settings.redis_connect_timeout_ms),
            command_timeout: Duration::from_millis(settings.redis_command_timeout_ms),
            wait_timeout: Duration::from_millis(settings.redis_command_timeout_ms),
        },
        TieredCacheConfig {
            l1_max_bytes: settings.memory_max_bytes,
            l1_ttl: Duration::from_secs(settings.memory_ttl_secs),
            breaker_failures: settings.breaker_failures,
            breaker_open_for: Duration::from_millis(settings.breaker_open_ms),
            ..TieredCacheConfig::default()
        },
    )
    .map(Some)
    .map_err(|error| StartError::Config(format!("REDIS_URL: {error}")))
}

/// The rate limits on `/api/v1` from `[rate_limit]`, or `None` when they are off: counted in Redis
/// when `REDIS_URL` is set (shared by every instance), in process while Redis fails (then per
/// instance, Redis skipped for `cache.breaker_open_ms` at a time), in process without Redis.
///
/// # Errors
/// [`StartError::Config`] when a quota, the trusted proxies or the Redis URL cannot be used.
fn rate_limits(
    config: &Config,
    limiter: Option<Arc<dyn RateLimiter>>,
) -> Result<Option<RateLimits>, StartError> {
    let settings = &config.rate_limit;
    let Some(limiter) = limiter else {
        tracing::info!("requests are not rate limited (rate_limit.enabled = false)");
        return Ok(None);
    };
    let quota = |path: &str, quota: Result<Quota, InvalidQuota>| {
        quota.map_err(|error| StartError::Config(format!("rate_limit.{path}: {error}")))
    };
    let policies = RatePolicies {
        anonymous: quota(
            "anonymous_per_minute",
            Quota::per_minute(settings.anonymous_per_minute),
        )?,
        user: quota(
            "user_per_minute",
            Quota::per_minute(settings.user_per_minute),
        )?,
        sign_in: quota(
            "sign_in_per_minute",
            Quota::per_minute(settings.sign_in_per_minute),
        )?,
        register: quota(
            "register_per_hour",
            Quota::per_hour(settings.register_per_hour),
        )?,
        uploads: quota(
            "uploads_per_hour",
            Quota::per_hour(settings.uploads_per_hour),
        )?,
    };
    let trusted_proxies = TrustedProxies::parse(&settings.trusted_proxies)
        .map_err(|error| StartError::Config(format!("rate_limit.trusted_proxies: {error}")))?;
    Ok(Some(RateLimits {
        limiter,
        policies,
        trusted_proxies,
    }))
}

/// The rate limiter when `rate_limit.enabled`: in Redis with an in-process fallback when
/// `REDIS_URL` is set (limits shared by every instance), in process otherwise. One serves the
/// HTTP middleware and the per-account sign-in throttle.
///
/// # Errors
/// [`StartError::Config`] when the Redis URL cannot be used.
fn rate_limiter(config: &Config) -> Result<Option<Arc<dyn RateLimiter>>, StartError> {
    if !config.rate_limit.enabled {
        return Ok(None);
    }
    let in_process = Arc::new(InProcessRateLimiter::default());
    let limiter: Arc<dyn RateLimiter> = match &config.redis.url {
        None => in_process,
        Some(url) => {
            let redis = RedisRateLimiter::connect(
                url.expose_secret(),
                RedisRateLimiterConfig {
                    key_prefix: config.redis.key_prefix.clone(),
                    pool_size: config.cache.redis_pool_size,
                    connect_timeout: Duration::from_millis(config.cache.redis_connect_timeout_ms),
                    command_timeout: Duration::from_millis(config.cache.redis_command_timeout_ms),
                },
            )
            .map_err(|error| StartError::Config(format!("REDIS_URL: {error}")))?;
            Arc::new(FallbackRateLimiter::new(
                Arc::new(redis),
                in_process,
                Duration::from_millis(config.cache.breaker_open_ms),
            ))
        }
    };
    Ok(Some(limiter))
}

/// The event bus: in process, or (with `REDIS_URL`) a Redis stream that every instance reads.
///
/// # Errors
/// [`StartError::Config`] when the Redis URL cannot be used.
fn event_bus(config: &Config) -> Result<Arc<dyn EventBus>, StartError> {
    let Some(url) = &config.redis.url else {
        return Ok(Arc::new(InProcessEventBus::new(config.events.bus_capacity)));
    };
    let bus = RedisEventBus::connect(
        url.expose_secret(),
        RedisEventBusConfig {
            stream_key: format!("{}events", config.redis.key_prefix),
            max_len: config.events.stream_max_len,
            connect_timeout: Duration::from_millis(config.cache.redis_connect_timeout_ms),
            ..RedisEventBusConfig::default()
        },
    )
    .map_err(|error| StartError::Config(format!("REDIS_URL: {error}")))?;
    Ok(Arc::new(bus))
}

/// The outbox relay of this instance, competing for the lease with the others.
fn relay(
    config: &Config,
    database: &Database,
    use_cases: &UseCases,
    bus: Arc<dyn EventBus>,
) -> Relay {
    Relay::new(
        Arc::new(SeaOutbox::new(database.clone())),
        Arc::new(SeaRelayCursors::new(database.clone())),
        bus,
        Arc::clone(&use_cases.deps().clock),
        use_cases.deps().cached_markets.clone(),
        format!("relay-{}", uuid::Uuid::new_v4().simple()),
        RelaySettings {
            batch: config.events.relay_batch,
            lease: Duration::from_millis(config.events.relay_lease_ms),
        },
    )
}

/// The job workers' settings from `[jobs]`.
#[must_use]
pub fn worker_settings(config: &Config) -> WorkerSettings {
    let jobs = &config.jobs;
    WorkerSettings {
        concurrency: jobs.concurrency,
        batch: u32::try_from(jobs.concurrency).unwrap_or(u32::MAX),
        lease: Duration::from_secs(jobs.lease_secs),
        heartbeat: Duration::from_secs(jobs.heartbeat_secs),
        poll: Duration::from_millis(jobs.poll_ms),
        retry: RetryPolicy {
            base: Duration::from_millis(jobs.retry_base_ms),
            max: Duration::from_secs(jobs.retry_max_secs),
        },
        grace: Duration::from_secs(jobs.grace_secs),
    }
}

/// The mailer `[mail]` asks for (the log by default).
///
/// # Errors
/// [`StartError::Mail`] when its settings are unusable (an SMTP URL that does not parse, a mail
/// folder that cannot be created).
pub fn mailer(config: &Config) -> Result<Arc<dyn Mailer>, StartError> {
    adapter_mail::build_mailer(&config.mail).map_err(|error| StartError::Mail(error.to_string()))
}

/// A job worker of this process fetching from `database`, with every handler of the service.
#[must_use]
pub fn job_worker(
    config: &Config,
    database: &Database,
    use_cases: &UseCases,
    mailer: &Arc<dyn Mailer>,
) -> Worker {
    let deps = use_cases.deps();
    Worker::new(
        Arc::new(SeaJobQueue::new(database.clone())),
        Arc::clone(&use_cases.deps().clock),
        format!("worker-{}", uuid::Uuid::new_v4().simple()),
        worker_settings(config),
    )
    .with_handler(Arc::new(crate::worker::NoopHandler))
    .with_handler(Arc::new(SettleMarketHandler::new(use_cases.clone())))
    .with_handler(Arc::new(CloseEndedMarketsHandler::new(use_cases.clone())))
    .with_handler(Arc::new(ThumbnailHandler::new(use_cases.clone())))
    .with_handler(Arc::new(WelcomeEmailHandler::new(
        Arc::clone(&deps.users),
        Arc::clone(mailer),
    )))
    .with_handler(Arc::new(ResolutionNoticeHandler::new(
        Arc::clone(&deps.users),
        Arc::clone(&deps.markets),
        Arc::clone(mailer),
    )))
}

/// Job workers running in the background, with the scheduler of periodic jobs: a stop signal
/// and their task.
struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Workers {
    fn spawn(
        config: &Config,
        worker: Worker,
        use_cases: &UseCases,
        outcomes: crate::metrics::JobOutcomes,
    ) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let deps = use_cases.deps();
        let scheduler = crate::worker::run_scheduler(
            Arc::clone(&deps.jobs),
            Arc::clone(&deps.clock),
            Arc::clone(&deps.ids),
            Duration::from_secs(config.jobs.close_markets_every_secs),
            stopped.clone(),
        );
        let task = tokio::spawn(async move {
            tokio::join!(
                crate::worker::run_workers(worker, stopped, outcomes),
                scheduler
            );
        });
        Self { stop, task }
    }

    /// Stops fetching, waits for the running jobs (up to the grace period) and releases the rest.
    async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the job workers ended abnormally");
        }
    }
}

/// Runs job workers only (`server worker`): no HTTP, until SIGINT/SIGTERM, then stops them
/// gracefully. The schema must be current.
///
/// # Errors
/// [`StartError`] when the database cannot be opened or its schema is behind.
pub async fn run_workers_only(config: &Config) -> Result<(), StartError> {
    let database = open_pools(config, config.database.max_connections, false).await?;
    let status = adapter_persistence::migration_status(&database).await?;
    if !status.pending.is_empty() {
        return Err(StartError::SchemaBehind(status.pending.len()));
    }
    let redis = redis_cache(config)?;
    let use_cases = use_cases(config, &database, redis.as_ref(), None).await?;
    let workers = Workers::spawn(
        config,
        job_worker(config, &database, &use_cases, &mailer(config)?),
        &use_cases,
        crate::metrics::JobOutcomes::default(),
    );
    shutdown_signal().await;
    tracing::info!("stopping the job workers");
    workers.stop().await;
    if let Err(error) = database.close().await {
        tracing::warn!(%error, "closing the database pools failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Rebuilds the search indexes (`server reindex`): the keyword index from the markets table
/// (SQLite's FTS5 table; PostgreSQL's column is generated and never behind), and the vector index
/// of this process to measure it. Prints what it did.
///
/// # Errors
/// [`StartError`] when the database cannot be opened or its schema is behind; the rebuild's own
/// failures.
pub async fn reindex(config: &Config) -> anyhow::Result<()> {
    let database = open_pools(config, config.database.max_connections, false).await?;
    let status = adapter_persistence::migration_status(&database).await?;
    if !status.pending.is_empty() {
        return Err(StartError::SchemaBehind(status.pending.len()).into());
    }
    let use_cases = use_cases(config, &database, None, None).await?;
    let engine = &use_cases.deps().search;
    let started = std::time::Instant::now();
    let keywords = engine.keywords.rebuild().await?;
    println!("keyword index: {keywords} markets");
    let vectors = use_cases
        .rebuild_vector_index()
        .await
        .map_err(|error| anyhow::anyhow!(error.0))?;
    println!(
        "vector index ({}, embedder {}): {vectors} markets; every `server serve` rebuilds its own at start",
        engine.vectors.kind(),
        engine.embedder.name()
    );
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    database.close().await.ok();
    Ok(())
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    database: Database,
    /// Background housekeeping, stopped with the server.
    housekeeping: tokio::task::JoinHandle<()>,
    /// The live stream's clients, told 1001 (going away) on shutdown.
    stream: MarketStream,
    /// The job workers, when `jobs.enabled_in_serve`.
    workers: Option<Workers>,
    /// Set on SIGTERM/SIGINT: readiness fails from then on.
    draining: Arc<Draining>,
    /// How long readiness fails before the listener closes.
    drain: Duration,
}

impl Application {
    /// Connects, migrates (when `migrate`), wires and binds. The server runs once
    /// [`Application::run_until_stopped`] is awaited.
    ///
    /// # Errors
    /// [`StartError`] naming what failed.
    pub async fn build(config: &Config, migrate: bool) -> Result<Self, StartError> {
        // First: a bad certificate or key stops the start before anything is connected.
        let tls = config
            .http
            .tls_paths()
            .map(|(cert, key)| tls_config(cert, key))
            .transpose()?;
        let database = open_database(config).await?;
        if migrate {
            adapter_persistence::migrate_up(&database).await?;
        } else {
            let status = adapter_persistence::migration_status(&database).await?;
            if !status.pending.is_empty() {
                return Err(StartError::SchemaBehind(status.pending.len()));
            }
        }
        let redis = redis_cache(config)?;
        let limiter = rate_limiter(config)?;
        let use_cases = use_cases(config, &database, redis.as_ref(), limiter.clone()).await?;
        let purge = crate::maintenance::purge_idempotency_records(
            Arc::clone(&use_cases.deps().idempotency),
            Arc::clone(&use_cases.deps().clock),
        );
        let stream = MarketStream::new(StreamSettings {
            max_connections: config.http.ws_max_connections,
            client_buffer: config.http.ws_client_buffer,
            allowed_origins: config.http.ws_origins(),
            heartbeat: Duration::from_secs(config.http.ws_heartbeat_secs),
            client_timeout: Duration::from_secs(config.http.ws_heartbeat_secs * 3),
        });
        let bus = event_bus(config)?;
        let received = EventCounters::new();
        let received_for_metrics = received.clone();
        let counters = crate::maintenance::log_counters(
            use_cases.deps().cached_markets.clone(),
            received.clone(),
        );
        let live = stream.clone();
        let indexer = use_cases.clone();
        let forwarding = crate::events::forward(Arc::clone(&bus), move |event| {
            received.record(&event);
            live.publish(&event);
            // Every instance keeps its own in-process vector index current (ADR 0015).
            let indexer = indexer.clone();
            tokio::spawn(async move {
                if let Err(error) = indexer.index_after(&event.event.event).await {
                    tracing::warn!(error = %error.0, "indexing a market for search failed");
                }
            });
            std::future::ready(())
        });
        let rebuilding = use_cases.clone();
        tokio::spawn(async move {
            let engine = &rebuilding.deps().search;
            let (embedder, kind) = (engine.embedder.name(), engine.vectors.kind());
            match rebuilding.prepare_vector_index().await {
                Ok((markets, rebuilt)) => {
                    tracing::info!(
                        markets,
                        rebuilt,
                        embedder,
                        index = kind,
                        "search vector index ready"
                    )
                }
                Err(error) => {
                    tracing::warn!(error = %error.0, "building the search vector index failed; searches use keywords only until markets are indexed again")
                }
            }
        });
        let background = open_background_database(config).await?;
        let relay = crate::events::run_relay(
            relay(config, &background, &use_cases, Arc::clone(&bus)),
            Duration::from_millis(config.events.relay_poll_ms),
            Duration::from_millis(config.events.relay_lease_ms / 4),
        );
        let housekeeping = tokio::spawn(async move {
            tokio::join!(purge, counters, relay, forwarding);
        });
        let mailer = mailer(config)?;
        let job_outcomes = crate::metrics::JobOutcomes::default();
        let workers = config.jobs.enabled_in_serve.then(|| {
            Workers::spawn(
                config,
                job_worker(config, &background, &use_cases, &mailer),
                &use_cases,
                job_outcomes.clone(),
            )
        });
        let mut metrics = Metrics::new();
        let refresh = crate::metrics::register(
            &mut metrics,
            [&database, &background],
            Duration::from_millis(config.database.slow_statement_ms),
            &use_cases,
            stream.clone(),
            received_for_metrics,
            &job_outcomes,
        );
        let metrics = Arc::new(metrics.with_refresh(refresh));
        let draining = Arc::new(Draining::default());
        let mut probes: Vec<Arc<dyn HealthProbe>> =
            vec![Arc::new(DatabaseProbe::new(database.clone()))];
        if let Some(redis) = &redis {
            probes.push(Arc::new(RedisProbe::new(redis.redis().clone())));
        }
        probes.push(Arc::new(QueueLagProbe::new(
            Arc::clone(&use_cases.deps().jobs),
            Arc::clone(&use_cases.deps().clock),
            Duration::from_secs(config.jobs.max_lag_secs),
        )));
        let state = web::Data::new(AppState {
            use_cases,
            probes,
            stream: stream.clone(),
            metrics,
            draining: Arc::clone(&draining),
            rate_limits: rate_limits(config, limiter)?,
            session_cookie: SessionCookie {
                secure: config.auth.cookie_secure.unwrap_or(!config.env.is_local()),
            },
        });
        let limits = HttpLimits {
            json_body_bytes: config.http.json_limit_bytes,
        };

        let address = format!("{}:{}", config.http.host, config.http.port);
        let listener =
            TcpListener::bind(config.http.bind_address()).map_err(|cause| StartError::Bind {
                address: address.clone(),
                cause,
            })?;
        let local = listener.local_addr().map_err(|cause| StartError::Bind {
            address: address.clone(),
            cause,
        })?;
        let https = tls.is_some();
        let cors_origins = config.http.cors_origins();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Compress::default())
                .wrap(adapter_http::security::cors(&cors_origins))
                .wrap(from_fn(request_context))
                // Outermost: every response, preflights and errors included.
                .wrap(Condition::new(https, adapter_http::security::hsts()))
                .configure(|service| adapter_http::configure(service, state.clone(), limits))
        })
        .workers(config.http.effective_workers())
        .client_request_timeout(Duration::from_millis(config.http.client_request_timeout_ms))
        .shutdown_timeout(config.http.shutdown_timeout_secs)
        // Signals are handled by `run_until_stopped`, which drains before stopping.
        .disable_signals();
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls),
            None => server.listen(listener),
        }
        .map_err(|cause| StartError::Bind { address, cause })?
        .run();
        let scheme = if https { "https" } else { "http" };
        tracing::info!(
            address = %local,
            database = ?database.backend(),
            read_replica = database.has_replica(),
            tls = https,
            "listening on {scheme}://{local}"
        );
        Ok(Self {
            port: local.port(),
            server,
            database,
            housekeeping,
            stream,
            workers,
            draining,
            drain: Duration::from_secs(config.http.shutdown_drain_secs),
        })
    }

    /// The port actually bound (useful with `PORT=0`).
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The database pools (shared with the server), e.g. for statement counts.
    #[must_use]
    pub const fn database(&self) -> &Database {
        &self.database
    }

    /// A handle to stop the server gracefully.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM or [`ServerHandle::stop`], then stops the workers and closes
    /// the database pools.
    ///
    /// On a signal: readiness answers 503 at once (while requests are still served) for
    /// `http.shutdown_drain_secs`, so that load balancers stop sending new ones; WebSocket
    /// clients are told to go away (1001); then the listener closes and in-flight requests get
    /// `http.shutdown_timeout_secs` to finish.
    ///
    /// # Errors
    /// The server's I/O error, if it fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stream = self.stream.clone();
        let draining = Arc::clone(&self.draining);
        let handle = self.server.handle();
        let drain = self.drain;
        let on_signal = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!(
                drain_secs = drain.as_secs(),
                "shutting down: readiness now fails"
            );
            draining.start();
            stream.close_all();
            tokio::time::sleep(drain).await;
            tracing::info!("closing the listener; finishing in-flight requests");
            handle.stop(true).await;
        });
        let result = self.server.await;
        on_signal.abort();
        self.draining.start();
        self.stream.close_all();
        if let Some(workers) = self.workers {
            workers.stop().await;
        }
        self.housekeeping.abort();
        if let Err(error) = self.database.close().await {
            tracing::warn!(%error, "closing the database pools failed");
        }
        tracing::info!("stopped");
        result
    }
}

/// Resolves on SIGINT or SIGTERM (the signals actix stops on).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.ok();
    }
}
