//! The composition root: builds every adapter from configuration, wires the use cases and starts
//! the HTTP server. Tests use [`Application::build`] to spawn the real thing on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use adapter_cache::{InProcessCache, RedisCacheConfig, RedisProbe, TieredCache, TieredCacheConfig};
use adapter_crypto::{Argon2Hasher, HashingConfig, JwtConfig, JwtIssuer};
use adapter_events::{InProcessEventBus, RedisEventBus, RedisEventBusConfig};
use adapter_http::rendering::JsonMarketRenderer;
use adapter_http::request_context::request_context;
use adapter_http::stream::{MarketStream, StreamSettings};
use adapter_http::{AppState, HttpLimits};
use adapter_memory::{InProcessRecentWrites, SystemClock, UuidV7Generator};
use adapter_persistence::{
    ConnectError, Database, DatabaseProbe, PoolOptions, SeaIdempotencyStore, SeaJobQueue,
    SeaMarketRepository, SeaOutbox, SeaPositionRepository, SeaRelayCursors, SeaUnitOfWork,
    SeaUserRepository,
};
use application::caching::{CachePolicy, CachedMarketRepository};
use application::events::{EventCounters, Relay, RelaySettings};
use application::jobs::{Worker, WorkerSettings};
use application::{Deps, Settings, UseCases};
use backon::{ExponentialBuilder, Retryable};
use domain::RetryPolicy;
use domain::ports::{Cache, Clock, EventBus, HealthProbe, MarketRepository};
use secrecy::ExposeSecret;

use crate::config::Config;

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
    #[error("cannot set up access tokens")]
    Tokens(#[from] adapter_crypto::JwtConfigError),
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        cause: std::io::Error,
    },
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
pub fn use_cases(
    config: &Config,
    database: &Database,
    redis: Option<&TieredCache>,
) -> Result<UseCases, StartError> {
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
            recent_writes: Arc::new(InProcessRecentWrites::new(read_your_writes)),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            clock,
            ids: Arc::new(UuidV7Generator),
        },
        Settings {
            starting_balance,
            read_your_writes,
            idempotency_ttl: Duration::from_secs(config.http.idempotency_ttl_secs),
            idempotency_lease: Duration::from_secs(config.http.idempotency_lease_secs),
        },
    ))
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

/// A job worker of this process on `database`, with the built-in handlers.
#[must_use]
pub fn job_worker(config: &Config, database: &Database, clock: Arc<dyn Clock>) -> Worker {
    Worker::new(
        Arc::new(SeaJobQueue::new(database.clone())),
        clock,
        format!("worker-{}", uuid::Uuid::new_v4().simple()),
        worker_settings(config),
    )
    .with_handler(Arc::new(crate::worker::NoopHandler))
}

/// Job workers running in the background: a stop signal and the loop's task.
struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Workers {
    fn spawn(worker: Worker) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(crate::worker::run_workers(worker, stopped));
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let workers = Workers::spawn(job_worker(config, &database, clock));
    shutdown_signal().await;
    tracing::info!("stopping the job workers");
    workers.stop().await;
    if let Err(error) = database.close().await {
        tracing::warn!(%error, "closing the database pools failed");
    }
    tracing::info!("stopped");
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
}

impl Application {
    /// Connects, migrates (when `migrate`), wires and binds. The server runs once
    /// [`Application::run_until_stopped`] is awaited.
    ///
    /// # Errors
    /// [`StartError`] naming what failed.
    pub async fn build(config: &Config, migrate: bool) -> Result<Self, StartError> {
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
        let use_cases = use_cases(config, &database, redis.as_ref())?;
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
        let counters = crate::maintenance::log_counters(
            use_cases.deps().cached_markets.clone(),
            received.clone(),
        );
        let live = stream.clone();
        let forwarding = crate::events::forward(Arc::clone(&bus), move |event| {
            received.record(&event);
            live.publish(&event);
            std::future::ready(())
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
        let workers = config.jobs.enabled_in_serve.then(|| {
            Workers::spawn(job_worker(
                config,
                &background,
                Arc::clone(&use_cases.deps().clock),
            ))
        });
        let mut probes: Vec<Arc<dyn HealthProbe>> =
            vec![Arc::new(DatabaseProbe::new(database.clone()))];
        if let Some(redis) = &redis {
            probes.push(Arc::new(RedisProbe::new(redis.redis().clone())));
        }
        let state = web::Data::new(AppState {
            use_cases,
            probes,
            stream: stream.clone(),
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
        let cors_origins = config.http.cors_origins();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Compress::default())
                .wrap(adapter_http::security::cors(&cors_origins))
                .wrap(from_fn(request_context))
                .configure(|service| adapter_http::configure(service, state.clone(), limits))
        })
        .workers(config.http.effective_workers())
        .client_request_timeout(Duration::from_millis(config.http.client_request_timeout_ms))
        .shutdown_timeout(config.http.shutdown_timeout_secs)
        .listen(listener)
        .map_err(|cause| StartError::Bind { address, cause })?
        .run();
        tracing::info!(
            address = %local,
            database = ?database.backend(),
            read_replica = database.has_replica(),
            "listening on http://{local}"
        );
        Ok(Self {
            port: local.port(),
            server,
            database,
            housekeeping,
            stream,
            workers,
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

    /// Serves until SIGINT/SIGTERM or [`ServerHandle::stop`], then closes the database pools.
    ///
    /// # Errors
    /// The server's I/O error, if it fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // actix stops on SIGINT/SIGTERM but waits for open connections (up to the shutdown
        // timeout); WebSocket clients are told to go away (1001) at once instead. A stop through
        // `ServerHandle::stop` closes them only once the server has stopped.
        let stream = self.stream.clone();
        let going_away = tokio::spawn(async move {
            shutdown_signal().await;
            stream.close_all();
        });
        let result = self.server.await;
        going_away.abort();
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
