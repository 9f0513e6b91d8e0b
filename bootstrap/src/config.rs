//! Layered configuration: built-in defaults < optional TOML file (`--config PATH`) < environment.
//!
//! [`Config::load`] reads the layers, [`Config::validate`]s the result and reports the first
//! problem as one line naming the key the way a user sets it (see [`ConfigError`]).
//!
//! # Keys
//!
//! Every key can be set in the TOML file (`[section]` + `key`, or `env = "..."` at the top) and in
//! the environment. The names in **bold** are the stable contract; every key is also reachable as
//! `APP_<SECTION>__<KEY>` (for example `APP_HTTP__PORT`). When both forms are set, the stable name
//! wins.
//!
//! | file key | environment | default | meaning |
//! |---|---|---|---|
//! | `env` | **`APP_ENV`** | `local` | `local`, `test` or `production`. Production requires `JWT_SECRET`. |
//! | `http.host` | **`HOST`** | `127.0.0.1` | Address to listen on (`0.0.0.0` for all interfaces). |
//! | `http.port` | **`PORT`** | `8080` | Port to listen on; `0` picks a free port (the bound address is logged). |
//! | `http.json_limit_bytes` | `APP_HTTP__JSON_LIMIT_BYTES` | `65536` | Largest accepted JSON body, 1 B to 16 MiB. |
//! | `http.workers` | `APP_HTTP__WORKERS` | number of CPUs | HTTP worker threads, 1 to 1024. |
//! | `http.client_request_timeout_ms` | `APP_HTTP__CLIENT_REQUEST_TIMEOUT_MS` | `5000` | Time allowed for a client to send the request head, 1 ms to 300000 ms. |
//! | `http.shutdown_timeout_secs` | `APP_HTTP__SHUTDOWN_TIMEOUT_SECS` | `30` | Grace period for in-flight requests on shutdown, 0 s to 3600 s. |
//! | `http.shutdown_drain_secs` | `APP_HTTP__SHUTDOWN_DRAIN_SECS` | `0` | On SIGTERM/SIGINT: how long `/health/ready` answers 503 while requests are still accepted, before the listener closes, so that load balancers stop sending traffic first (set it to the probe interval times its failure threshold), 0 s to 300 s. |
//! | `http.cors_allowed_origins` | `APP_HTTP__CORS_ALLOWED_ORIGINS` | empty | Comma-separated page origins (`https://app.example.com`) that may call the API from a browser (CORS, without credentials); `*` allows any. Empty: same-origin only. |
//! | `http.ws_max_connections` | `APP_HTTP__WS_MAX_CONNECTIONS` | `1000` | WebSocket clients of `/api/v1/markets/stream` at once on one instance (more get 503 `too_many_connections`), 1 to 100000. |
//! | `http.ws_client_buffer` | `APP_HTTP__WS_CLIENT_BUFFER` | `64` | Messages queued for one WebSocket client; a client that falls further behind is closed (too slow), 1 to 10000. |
//! | `http.ws_allowed_origins` | `APP_HTTP__WS_ALLOWED_ORIGINS` | empty | Comma-separated page origins (`https://app.example.com`) allowed to open the stream besides the service's own; `*` allows any. |
//! | `http.ws_heartbeat_secs` | `APP_HTTP__WS_HEARTBEAT_SECS` | `10` | Ping interval; a client silent for 3 intervals is closed, 1 s to 300 s. |
//! | `http.tls_cert_path` | `APP_HTTP__TLS_CERT_PATH` | unset | PEM file of the server's certificate chain (leaf first): when set, with `http.tls_key_path`, the binary serves HTTPS (TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1) instead of plain HTTP, and every response carries `Strict-Transport-Security`. Unset (both): plain HTTP, for a proxy that terminates TLS. The files are read at start; a missing or invalid one stops it. |
//! | `http.tls_key_path` | `APP_HTTP__TLS_KEY_PATH` | unset | PEM file of the private key of `http.tls_cert_path` (PKCS#8, PKCS#1 or SEC1); both keys or neither. |
//! | `database.url` | **`DATABASE_URL`** | `sqlite://data/markets.db?mode=rwc` | `sqlite:...` or `postgres://...` / `postgresql://...`. The default SQLite file (and `./data/`) is created if missing. |
//! | `database.read_url` | **`DATABASE_READ_URL`** | unset | Optional read replica, same database kind as `DATABASE_URL`; unset means reads go to the primary. |
//! | `database.connect_retry_secs` | `APP_DATABASE__CONNECT_RETRY_SECS` | `10` | At start-up, keep retrying an unreachable database (exponential backoff with jitter) for this long before giving up, 0 (no retry) to 600 s. |
//! | `database.max_connections` | `APP_DATABASE__MAX_CONNECTIONS` | `10` | Pool size, 1 to 1000. |
//! | `database.min_connections` | `APP_DATABASE__MIN_CONNECTIONS` | `0` | Connections kept open, 0 to `max_connections`. |
//! | `database.acquire_timeout_ms` | `APP_DATABASE__ACQUIRE_TIMEOUT_MS` | `3000` | Wait for a free pooled connection, 1 ms to 300000 ms. |
//! | `database.idle_timeout_secs` | `APP_DATABASE__IDLE_TIMEOUT_SECS` | `600` | Close pooled connections idle this long, 1 s to 86400 s. |
//! | `database.statement_timeout_ms` | `APP_DATABASE__STATEMENT_TIMEOUT_MS` | `5000` | Per-statement limit (PostgreSQL), 0 (none) to 3600000 ms. |
//! | `database.slow_statement_ms` | `APP_DATABASE__SLOW_STATEMENT_MS` | `500` | Statements slower than this are logged (warn, with their SQL, never the values), 1 ms to 3600000 ms. |
//! | `database.read_your_writes_ms` | `APP_DATABASE__READ_YOUR_WRITES_MS` | `5000` | After a write, that caller's list reads go to the primary for this long (with a read replica), 0 to 600000 ms. |
//! | `http.idempotency_ttl_secs` | `APP_HTTP__IDEMPOTENCY_TTL_SECS` | `86400` | How long a completed `Idempotency-Key` is kept for replay, 60 s to 604800 s. |
//! | `http.idempotency_lease_secs` | `APP_HTTP__IDEMPOTENCY_LEASE_SECS` | `60` | How long an unfinished `Idempotency-Key` blocks duplicates before it may be taken over, 1 s to 3600 s. |
//! | `redis.url` | **`REDIS_URL`** | unset | `redis://`, `rediss://`, `redis+unix://` or `unix://`. When set, `/health/ready` checks it; market reads are cached in process in front of Redis (see `cache.*`); requests are rate limited in it (see `rate_limit.*`); domain events reach every instance through a Redis stream (see `events.*`). Unset means in-process adapters. |
//! | `redis.key_prefix` | `APP_REDIS__KEY_PREFIX` | `markets:` | Put before every Redis key (cache entries, the event stream, rate-limit counters), so that several services can share one Redis; 1 to 64 bytes without spaces. |
//! | `cache.enabled` | `APP_CACHE__ENABLED` | `true` | Cache market reads (`false` turns caching off: every read goes to the database). |
//! | `cache.market_ttl_secs` | `APP_CACHE__MARKET_TTL_SECS` | `300` | How long one market stays cached (it is rewritten on every change), 1 s to 86400 s. |
//! | `cache.list_ttl_secs` | `APP_CACHE__LIST_TTL_SECS` | `30` | How long a list page stays cached (every market write retires all pages), 1 s to 3600 s. |
//! | `cache.not_found_ttl_secs` | `APP_CACHE__NOT_FOUND_TTL_SECS` | `5` | How long "no such market" is cached, 1 s to 3600 s. |
//! | `cache.jitter_percent` | `APP_CACHE__JITTER_PERCENT` | `10` | Every time to live is shortened by a random 0 to this percent, 0 to 50. |
//! | `cache.memory_max_bytes` | `APP_CACHE__MEMORY_MAX_BYTES` | `16777216` | Bound of the in-process cache (alone, or in front of Redis), 64 KiB to 4 GiB. |
//! | `cache.memory_ttl_secs` | `APP_CACHE__MEMORY_TTL_SECS` | `30` | With Redis: how long an entry stays in the in-process tier, 1 s to 3600 s. |
//! | `cache.redis_pool_size` | `APP_CACHE__REDIS_POOL_SIZE` | `32` | With Redis: connections, 1 to 1024. |
//! | `cache.redis_command_timeout_ms` | `APP_CACHE__REDIS_COMMAND_TIMEOUT_MS` | `250` | With Redis: one cache operation, connection wait included; slower counts as a failure, 1 ms to 10000 ms. |
//! | `cache.redis_connect_timeout_ms` | `APP_CACHE__REDIS_CONNECT_TIMEOUT_MS` | `1000` | With Redis: opening a connection, 1 ms to 60000 ms. |
//! | `cache.breaker_failures` | `APP_CACHE__BREAKER_FAILURES` | `3` | With Redis: consecutive failures that open the circuit breaker (Redis is then skipped), 1 to 1000. |
//! | `cache.breaker_open_ms` | `APP_CACHE__BREAKER_OPEN_MS` | `1000` | With Redis: how long the breaker stays open before one probe, 10 ms to 600000 ms. |
//! | `events.relay_poll_ms` | `APP_EVENTS__RELAY_POLL_MS` | `25` | How often the outbox relay looks for committed events when it has nothing to publish, 1 ms to 10000 ms. |
//! | `events.relay_batch` | `APP_EVENTS__RELAY_BATCH` | `500` | Events published at once, at most, 1 to 10000. |
//! | `events.relay_lease_ms` | `APP_EVENTS__RELAY_LEASE_MS` | `5000` | One instance relays at a time; when it dies another takes over after this, 100 ms to 600000 ms. |
//! | `events.bus_capacity` | `APP_EVENTS__BUS_CAPACITY` | `4096` | Without Redis: events a slow subscriber may fall behind before it skips some, 16 to 1048576. |
//! | `events.stream_max_len` | `APP_EVENTS__STREAM_MAX_LEN` | `100000` | With Redis: events kept in the stream (approximately), 1000 to 100000000. |
//! | `jobs.enabled_in_serve` | `APP_JOBS__ENABLED_IN_SERVE` | `true` | `server serve` runs job workers too (`false`: only `server worker` runs jobs). |
//! | `jobs.concurrency` | `APP_JOBS__CONCURRENCY` | `4` | Jobs one process runs at once, 1 to 1024. |
//! | `jobs.lease_secs` | `APP_JOBS__LEASE_SECS` | `30` | How long a fetched job is held; a worker that dies loses its jobs to another after this, 1 s to 3600 s. |
//! | `jobs.heartbeat_secs` | `APP_JOBS__HEARTBEAT_SECS` | `10` | How often running jobs' leases are extended, 1 s to 3600 s, less than `jobs.lease_secs`. |
//! | `jobs.poll_ms` | `APP_JOBS__POLL_MS` | `100` | How often a worker looks for jobs when none is available, 1 ms to 60000 ms. |
//! | `jobs.grace_secs` | `APP_JOBS__GRACE_SECS` | `10` | On stop: how long running jobs may finish before they are released (run again elsewhere, the attempt not counted), 0 s to 3600 s. |
//! | `jobs.retry_base_ms` | `APP_JOBS__RETRY_BASE_MS` | `1000` | Delay after a job's first failed attempt; it doubles per attempt (with jitter), 1 ms to 3600000 ms. |
//! | `jobs.retry_max_secs` | `APP_JOBS__RETRY_MAX_SECS` | `300` | The longest delay between attempts, 1 s to 86400 s. |
//! | `jobs.settlement_batch` | `APP_JOBS__SETTLEMENT_BATCH` | `500` | Positions paid per transaction when a resolved or cancelled market is settled, 1 to 10000. |
//! | `jobs.max_lag_secs` | `APP_JOBS__MAX_LAG_SECS` | `300` | `/health/ready` reports the job queue as `degraded` (still 200) while the oldest due job has waited longer than this, 1 s to 86400 s. |
//! | `jobs.close_markets_every_secs` | `APP_JOBS__CLOSE_MARKETS_EVERY_SECS` | `60` | How often active markets whose end date has passed are closed (a `close_ended_markets` job, one at a time across instances), 1 s to 86400 s. |
//! | `auth.jwt_secret` | **`JWT_SECRET`** | unset | HMAC key for access tokens, at least 32 bytes. Required in production; in `local`/`test` an ephemeral one is generated (tokens die with the process). |
//! | `auth.jwt_issuer` | `APP_AUTH__JWT_ISSUER` | `prediction-markets` | `iss` claim issued and required, 1 to 255 bytes. |
//! | `auth.jwt_audience` | `APP_AUTH__JWT_AUDIENCE` | `prediction-markets-api` | `aud` claim issued and required, 1 to 255 bytes. |
//! | `auth.access_token_ttl_secs` | `APP_AUTH__ACCESS_TOKEN_TTL_SECS` | `900` | Access token lifetime, 60 s to 86400 s. |
//! | `auth.refresh_idle_secs` | `APP_AUTH__REFRESH_IDLE_SECS` | `604800` | A bearer session (its refresh-token family) ends when no refresh happened for this long, 60 s to 31536000 s. |
//! | `auth.refresh_absolute_secs` | `APP_AUTH__REFRESH_ABSOLUTE_SECS` | `2592000` | A bearer session ends this long after sign-in whatever its use, 60 s to 31536000 s, at least `refresh_idle_secs`. |
//! | `auth.cookie_idle_secs` | `APP_AUTH__COOKIE_IDLE_SECS` | `1800` | A cookie session ends when unused for this long, 60 s to 31536000 s. |
//! | `auth.cookie_absolute_secs` | `APP_AUTH__COOKIE_ABSOLUTE_SECS` | `43200` | A cookie session ends this long after sign-in, 60 s to 31536000 s, at least `cookie_idle_secs`. |
//! | `auth.cookie_secure` | `APP_AUTH__COOKIE_SECURE` | `false` in `local`, `true` otherwise | Session cookies are `Secure` and named `__Host-session` (else plain `session`, for HTTP on a developer machine). |
//! | `auth.session_check_ttl_ms` | `APP_AUTH__SESSION_CHECK_TTL_MS` | `500` | How long an instance trusts a session it read (a revocation made through another instance takes effect within this), 0 ms to 1000 ms. |
//! | `auth.hash_concurrency` | `APP_AUTH__HASH_CONCURRENCY` | half the CPUs, at least 1 | Password hashes computed at once, 1 to 1024. Each holds `argon2_memory_kib` of memory while it runs, and the rest of the CPUs keep serving requests during a burst of sign-ins. |
//! | `auth.argon2_memory_kib` | `APP_AUTH__ARGON2_MEMORY_KIB` | `9216` | Argon2id memory cost, 8 × parallelism to 4194304 KiB. The default and `auth.argon2_iterations` are one of OWASP's equally strong settings (19456 KiB × 2, 12288 × 3, 9216 × 4, 7168 × 5): less memory, more passes. Stored hashes of other costs are re-hashed at the next sign-in. |
//! | `auth.argon2_iterations` | `APP_AUTH__ARGON2_ITERATIONS` | `4` | Argon2id time cost, 1 to 64. |
//! | `auth.argon2_parallelism` | `APP_AUTH__ARGON2_PARALLELISM` | `1` | Argon2id lanes, 1 to 64. |
//! | `log.format` | **`LOG_FORMAT`** | `pretty` in `local`, `json` otherwise | `json` (one object per line) or `pretty` (human readable). |
//! | (not a file key) | **`RUST_LOG`** | `info,sqlx=warn,sea_orm=warn,...` | Log filter directives (`tracing_subscriber::EnvFilter` syntax). |
//! | `markets.starting_balance` | `APP_MARKETS__STARTING_BALANCE` | `1000.00` | Credits given to a new user: a non-negative decimal with at most two places. |
//! | `uploads.max_image_bytes` | `APP_UPLOADS__MAX_IMAGE_BYTES` | `5242880` | Largest market image accepted (`POST /api/v1/markets/{id}/image`; larger ones get 413 `payload_too_large`), 1 KiB to 64 MiB. |
//! | `uploads.dir` | `APP_UPLOADS__DIR` | `data/uploads` | Folder where uploaded market images and their thumbnails are kept (created by the first upload). |
//! | `mail.transport` | `APP_MAIL__TRANSPORT` | `log` | Where emails (the welcome email, market resolution notices) go: `log` (a log line with recipient and subject; nothing is sent), `file` (one `.eml` file per email in `mail.file_dir`) or `smtp` (the server at `mail.smtp_url`). |
//! | `mail.from` | `APP_MAIL__FROM` | `Prediction Markets <noreply@example.com>` | The sender: `name@example.com` or `Name <name@example.com>`. |
//! | `mail.smtp_url` | `APP_MAIL__SMTP_URL` | unset | Required with `smtp`: `smtp://[user:password@]host[:port]` (plain, or `?tls=required` for STARTTLS) or `smtps://...` (TLS from the start). |
//! | `mail.file_dir` | `APP_MAIL__FILE_DIR` | `data/mail` | With `file`: the folder the `.eml` files are written to (created if missing). |
//! | `mail.timeout_ms` | `APP_MAIL__TIMEOUT_MS` | `10000` | With `smtp`: limit of one attempt to send (connecting and the whole exchange), 1 ms to 300000 ms. |
//! | `mail.retries` | `APP_MAIL__RETRIES` | `3` | With `smtp`: times a send that failed transiently (connection refused or reset, timeout, a 4xx reply) is tried again within the same run of its job (which is itself retried later), 0 to 10. A 5xx reply is never retried. |
//! | `mail.retry_base_ms` | `APP_MAIL__RETRY_BASE_MS` | `500` | With `smtp`: delay before the first of those retries; it doubles per retry, with jitter, 1 ms to 60000 ms. |
//! | `rate_limit.enabled` | `APP_RATE_LIMIT__ENABLED` | `true` | Limit requests to `/api/v1/*` (not `/health/*` nor `/metrics`): each request counts against the first quota that applies: sign-in, registration or uploads (per client IP), a signed-in user's (per user), else an anonymous client's (per client IP); over it, 429 `rate_limited` with `Retry-After`. With `REDIS_URL` counted in Redis, shared by every instance (timeouts `cache.redis_*`); while Redis fails, in process for `cache.breaker_open_ms` at a time, so limits then hold per instance. Without Redis, in process. |
//! | `rate_limit.anonymous_per_minute` | `APP_RATE_LIMIT__ANONYMOUS_PER_MINUTE` | `120` | Requests per minute from one client IP without a valid token (bursts of as many at once), 1 to 1000000000. |
//! | `rate_limit.user_per_minute` | `APP_RATE_LIMIT__USER_PER_MINUTE` | `600` | Requests per minute of one signed-in user, 1 to 1000000000. |
//! | `rate_limit.sign_in_per_minute` | `APP_RATE_LIMIT__SIGN_IN_PER_MINUTE` | `10` | `POST /api/v1/auth/login` per minute from one client IP, 1 to 1000000000. |
//! | `rate_limit.sign_in_per_account_per_hour` | `APP_RATE_LIMIT__SIGN_IN_PER_ACCOUNT_PER_HOUR` | `20` | Sign-in attempts per hour for one email address, from any IP, counted before the password is checked and the same for unknown addresses (no account enumeration); over it, 429 `rate_limited`, 1 to 1000000000. |
//! | `rate_limit.register_per_hour` | `APP_RATE_LIMIT__REGISTER_PER_HOUR` | `20` | `POST /api/v1/auth/register` per hour from one client IP, 1 to 1000000000. |
//! | `rate_limit.uploads_per_hour` | `APP_RATE_LIMIT__UPLOADS_PER_HOUR` | `60` | `POST /api/v1/markets/{id}/image` per hour from one client IP, 1 to 1000000000. |
//! | `rate_limit.trusted_proxies` | `APP_RATE_LIMIT__TRUSTED_PROXIES` | empty | Comma-separated IP addresses and CIDR blocks (`10.0.0.0/8`) of the proxies in front of the service: when the peer is one of them, the client IP is the right-most `X-Forwarded-For` address that is not; otherwise it is the peer address. Empty: `X-Forwarded-For` is ignored. |
//! | `search.embedder` | `APP_SEARCH__EMBEDDER` | `local` | How market search turns texts into vectors: `local` (in process, no model, no network: hashed character trigrams, stems and a small synonym table; catches misspellings, not real synonyms) or `openai` (an OpenAI-compatible `POST {base_url}/embeddings` API). See `docs/search.md`. |
//! | `search.base_url` | `APP_SEARCH__BASE_URL` | `http://127.0.0.1:11434/v1` | With `openai`: the API's base URL without `/embeddings`; plain `http://` only (a local model server such as Ollama or vLLM, or a proxy that adds TLS in front of a hosted API). |
//! | `search.model` | `APP_SEARCH__MODEL` | `nomic-embed-text` | With `openai`: the embedding model, 1 to 200 bytes. |
//! | `search.api_key` | `APP_SEARCH__API_KEY` | unset | With `openai`: the bearer token sent to the API (a secret, never logged); unset sends none. |
//! | `search.dimensions` | `APP_SEARCH__DIMENSIONS` | `768` | With `openai`: the length of the model's vectors (768 for `nomic-embed-text`, 1536 for `text-embedding-3-small`), 8 to 8192; answers of another length are refused. The local embedder always uses 256. |
//! | `search.timeout_ms` | `APP_SEARCH__TIMEOUT_MS` | `10000` | With `openai`: limit of one request, 1 ms to 300000 ms. |
//! | `search.retries` | `APP_SEARCH__RETRIES` | `3` | With `openai`: times a request that failed transiently (timeout, connection error, 429, 5xx) is tried again, with exponential backoff and jitter, 0 to 10. Other 4xx answers are never retried. |
//! | `search.vector_index` | `APP_SEARCH__VECTOR_INDEX` | `auto` | Where market embeddings are searched: `auto` (pgvector's HNSW index when the database is PostgreSQL and the `vector` extension is installed and can be created, else in process; the log and `/health/ready` say which), `memory` (in process, exact, rebuilt at every start: 256 B per market with the local embedder) or `pgvector` (refuse to start without it). See `docs/search.md`. |
//!
//! # Rules
//!
//! - An empty environment value (`REDIS_URL=`) counts as unset.
//! - Environment values of text keys (URLs, secrets, host, names) are taken verbatim; the others are
//!   parsed as numbers.
//! - An unknown key in the file, or under a known `APP_<SECTION>__` prefix, is an error (typos do
//!   not pass silently). Other `APP_*` variables are not ours and are ignored.
//! - A file given with `--config` must exist.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use adapter_mail::MailSettings;
use figment::error::Kind;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Default of `database.url`: a SQLite file under `./data/`, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/markets.db?mode=rwc";
/// Smallest accepted `JWT_SECRET`, in bytes.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The deployment environment (`APP_ENV`); parsed case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum AppEnv {
    /// A developer machine: ephemeral JWT secret allowed, pretty logs.
    #[default]
    Local,
    /// Automated tests: like `local`, with JSON logs.
    Test,
    /// A real deployment: `JWT_SECRET` required, JSON logs.
    Production,
}

impl AppEnv {
    /// The name as written in `APP_ENV`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Test => "test",
            Self::Production => "production",
        }
    }

    /// Whether this is `local`, a developer machine.
    #[must_use]
    pub const fn is_local(self) -> bool {
        matches!(self, Self::Local)
    }

    /// Whether this is `production`.
    #[must_use]
    pub const fn is_production(self) -> bool {
        matches!(self, Self::Production)
    }
}

impl fmt::Display for AppEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AppEnv {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const NAMES: &[&str] = &["local", "test", "production"];
        match text.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "test" => Ok(Self::Test),
            "production" => Ok(Self::Production),
            _ => Err(UnknownValue::new(text, NAMES)),
        }
    }
}

impl TryFrom<String> for AppEnv {
    type Error = UnknownValue;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// A text that is none of the names an enumerated setting accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{found}`; expected one of: {}", expected.join(", "))]
pub struct UnknownValue {
    found: String,
    expected: &'static [&'static str],
}

impl UnknownValue {
    fn new(found: &str, expected: &'static [&'static str]) -> Self {
        Self {
            found: found.to_owned(),
            expected,
        }
    }
}

/// How log lines are written (`LOG_FORMAT`); parsed case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// One JSON object per line, with the fields of the enclosing spans (request id) flattened in.
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

impl LogFormat {
    /// The name as written in `LOG_FORMAT`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const NAMES: &[&str] = &["json", "pretty"];
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err(UnknownValue::new(text, NAMES)),
        }
    }
}

impl TryFrom<String> for LogFormat {
    type Error = UnknownValue;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// The whole configuration. `Debug` never shows secrets (URLs and keys are [`SecretString`]s).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `APP_ENV`.
    pub env: AppEnv,
    /// The HTTP server.
    pub http: HttpConfig,
    /// The SQL database.
    pub database: DatabaseConfig,
    /// Redis; unset means in-process adapters.
    pub redis: RedisConfig,
    /// Cached market reads.
    pub cache: CacheConfig,
    /// The outbox relay and the event bus.
    pub events: EventsConfig,
    /// Background job workers.
    pub jobs: JobsConfig,
    /// Tokens and password hashing.
    pub auth: AuthConfig,
    /// Logging.
    pub log: LogConfig,
    /// Business settings of the example domain.
    pub markets: BusinessConfig,
    /// Uploaded files (market images).
    pub uploads: UploadsConfig,
    /// Outgoing email (`[mail]`; the adapter's own settings type, validated here too).
    pub mail: MailSettings,
    /// Rate limits on `/api/v1`.
    pub rate_limit: RateLimitConfig,
    /// Market search.
    pub search: SearchConfig,
}

/// `[search]`: how market texts become vectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    pub embedder: EmbedderKind,
    pub base_url: String,
    pub model: String,
    pub api_key: Option<SecretString>,
    pub dimensions: usize,
    pub timeout_ms: u64,
    pub retries: u32,
    pub vector_index: VectorIndexKind,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            embedder: EmbedderKind::Local,
            base_url: "http://127.0.0.1:11434/v1".to_owned(),
            model: "nomic-embed-text".to_owned(),
            api_key: None,
            dimensions: 768,
            timeout_ms: 10_000,
            retries: 3,
            vector_index: VectorIndexKind::Auto,
        }
    }
}

/// `search.embedder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// In process, no model.
    #[default]
    Local,
    /// An OpenAI-compatible embeddings API.
    Openai,
}

/// `search.vector_index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorIndexKind {
    /// pgvector when the database is PostgreSQL and the extension can be created, else in process.
    #[default]
    Auto,
    /// Always in process (rebuilt at every start).
    Memory,
    /// pgvector or no start.
    Pgvector,
}

/// `[http]`: the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `HOST`, default `127.0.0.1`.
    pub host: String,
    /// `PORT`, default `8080`; `0` picks a free port.
    pub port: u16,
    /// Largest JSON body in bytes, default 64 KiB, 1..=16 MiB.
    pub json_limit_bytes: usize,
    /// Worker threads; `None` (default) means the number of CPUs.
    pub workers: Option<usize>,
    /// Time for a client to send the request head, default 5000 ms.
    pub client_request_timeout_ms: u64,
    /// Grace period for in-flight requests on shutdown, default 30 s.
    pub shutdown_timeout_secs: u64,
    /// Readiness 503 before the listener closes, default 0 s.
    pub shutdown_drain_secs: u64,
    /// How long a completed `Idempotency-Key` is kept, default 86400 s.
    pub idempotency_ttl_secs: u64,
    /// How long an unfinished `Idempotency-Key` is honoured, default 60 s.
    pub idempotency_lease_secs: u64,
    /// Comma-separated.
    pub cors_allowed_origins: String,
    pub ws_max_connections: usize,
    pub ws_client_buffer: usize,
    /// Comma-separated.
    pub ws_allowed_origins: String,
    pub ws_heartbeat_secs: u64,
    /// PEM certificate chain; with `tls_key_path`, serve HTTPS. Default unset.
    pub tls_cert_path: Option<PathBuf>,
    /// PEM private key of `tls_cert_path`. Default unset.
    pub tls_key_path: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            json_limit_bytes: 64 * KIB,
            workers: None,
            client_request_timeout_ms: 5_000,
            shutdown_timeout_secs: 30,
            shutdown_drain_secs: 0,
            idempotency_ttl_secs: 86_400,
            idempotency_lease_secs: 60,
            cors_allowed_origins: String::new(),
            ws_max_connections: 1_000,
            ws_client_buffer: 64,
            ws_allowed_origins: String::new(),
            ws_heartbeat_secs: 10,
            tls_cert_path: None,
            tls_key_path: None,
        }
    }
}

impl HttpConfig {
    /// The origins of `ws_allowed_origins`, trimmed, empty ones left out.
    #[must_use]
    pub fn ws_origins(&self) -> Vec<String> {
        origin_list(&self.ws_allowed_origins)
    }

    /// The origins of `cors_allowed_origins`, trimmed, empty ones left out.
    #[must_use]
    pub fn cors_origins(&self) -> Vec<String> {
        origin_list(&self.cors_allowed_origins)
    }

    /// The certificate chain and private key files when TLS is on (both set; validation refuses
    /// one without the other).
    #[must_use]
    pub fn tls_paths(&self) -> Option<(&Path, &Path)> {
        self.tls_cert_path
            .as_deref()
            .zip(self.tls_key_path.as_deref())
    }
}

/// The comma-separated origins of `text`, trimmed, empty ones left out.
fn origin_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks that the TLS files are named together (both or neither), and not as empty paths.
fn check_tls_paths(http: &HttpConfig) -> Result<(), ConfigError> {
    let cert = ("http.tls_cert_path", http.tls_cert_path.as_deref());
    let key = ("http.tls_key_path", http.tls_key_path.as_deref());
    for (path, value) in [cert, key] {
        if value.is_some_and(|file| file.as_os_str().is_empty()) {
            return Err(ConfigError::at(path, "must not be empty"));
        }
    }
    for ((path, value), (other, other_value)) in [(cert, key), (key, cert)] {
        if value.is_none() && other_value.is_some() {
            return Err(ConfigError::at(
                path,
                format!(
                    "must be set when {} is: TLS needs both the certificate chain and its private key",
                    describe_key(other)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that every origin of `origins` has a scheme (or is `*`).
fn check_origins(path: &str, origins: &[String]) -> Result<(), ConfigError> {
    for origin in origins {
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Err(ConfigError::at(
                path,
                "must list origins such as https://app.example.com, or *",
            ));
        }
    }
    Ok(())
}

impl HttpConfig {
    /// `(host, port)`, ready for a `bind` call.
    #[must_use]
    pub fn bind_address(&self) -> (&str, u16) {
        (self.host.as_str(), self.port)
    }

    /// [`HttpConfig::workers`], or the number of CPUs when unset.
    #[must_use]
    pub fn effective_workers(&self) -> usize {
        self.workers.unwrap_or_else(available_cpus)
    }
}

/// The kind of SQL database a URL points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatabaseKind {
    /// `sqlite:...`
    Sqlite,
    /// `postgres://...` or `postgresql://...`
    Postgres,
}

impl DatabaseKind {
    /// The kind of `url`, `None` when the scheme is not supported.
    #[must_use]
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// `[database]`: the SQL database and its pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`, default [`DEFAULT_DATABASE_URL`].
    pub url: SecretString,
    /// `DATABASE_READ_URL`: an optional read replica.
    pub read_url: Option<SecretString>,
    /// Pool size, default 10.
    pub max_connections: u32,
    /// Connections kept open, default 0.
    pub min_connections: u32,
    /// Wait for a pooled connection, default 3000 ms.
    pub acquire_timeout_ms: u64,
    /// Close connections idle this long, default 600 s.
    pub idle_timeout_secs: u64,
    /// Per-statement limit, default 5000 ms; 0 means none.
    pub statement_timeout_ms: u64,
    /// Log statements slower than this, default 500 ms.
    pub slow_statement_ms: u64,
    /// After a write, the writer's list reads go to the primary for this long, default 5000 ms.
    pub read_your_writes_ms: u64,
    pub connect_retry_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from(DEFAULT_DATABASE_URL),
            read_url: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_ms: 3_000,
            idle_timeout_secs: 600,
            statement_timeout_ms: 5_000,
            slow_statement_ms: 500,
            read_your_writes_ms: 5_000,
            connect_retry_secs: 10,
        }
    }
}

impl DatabaseConfig {
    /// The kind of database `url` points to (SQLite when the scheme is unknown, which
    /// [`Config::validate`] rejects).
    #[must_use]
    pub fn kind(&self) -> DatabaseKind {
        DatabaseKind::of_url(self.url.expose_secret()).unwrap_or(DatabaseKind::Sqlite)
    }

    /// The file of a SQLite `url`; `None` for PostgreSQL and in-memory SQLite.
    #[must_use]
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        sqlite_path(self.url.expose_secret())
    }

    /// Creates the folder of a SQLite file (`./data/` by default) when it is missing; does nothing
    /// for PostgreSQL or in-memory SQLite. SQLite creates the file itself (`mode=rwc`).
    ///
    /// # Errors
    /// The I/O error of creating the folder.
    pub fn ensure_sqlite_dir(&self) -> std::io::Result<()> {
        match self.sqlite_path().as_deref().and_then(Path::parent) {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
            _ => Ok(()),
        }
    }
}

/// `[redis]`: optional Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `REDIS_URL`; `None` (default) means in-process adapters.
    pub url: Option<SecretString>,
    /// Put before every key.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "markets:".to_owned(),
        }
    }
}

/// `[cache]`: cached market reads, in process, or in process in front of Redis with `REDIS_URL`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    pub enabled: bool,
    pub market_ttl_secs: u64,
    pub list_ttl_secs: u64,
    pub not_found_ttl_secs: u64,
    pub jitter_percent: u64,
    pub memory_max_bytes: u64,
    pub memory_ttl_secs: u64,
    pub redis_pool_size: usize,
    pub redis_command_timeout_ms: u64,
    pub redis_connect_timeout_ms: u64,
    pub breaker_failures: u32,
    pub breaker_open_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            market_ttl_secs: 300,
            list_ttl_secs: 30,
            not_found_ttl_secs: 5,
            jitter_percent: 10,
            memory_max_bytes: 16 * 1024 * 1024,
            memory_ttl_secs: 30,
            redis_pool_size: 32,
            redis_command_timeout_ms: 250,
            redis_connect_timeout_ms: 1_000,
            breaker_failures: 3,
            breaker_open_ms: 1_000,
        }
    }
}

/// `[events]`: the outbox relay and the event bus (in process, or a Redis stream with
/// `REDIS_URL`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    pub relay_poll_ms: u64,
    pub relay_batch: u64,
    pub relay_lease_ms: u64,
    pub bus_capacity: usize,
    pub stream_max_len: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            relay_poll_ms: 25,
            relay_batch: 500,
            relay_lease_ms: 5_000,
            bus_capacity: 4_096,
            stream_max_len: 100_000,
        }
    }
}

/// `[jobs]`: the background job workers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub enabled_in_serve: bool,
    pub concurrency: usize,
    pub lease_secs: u64,
    pub heartbeat_secs: u64,
    pub poll_ms: u64,
    pub grace_secs: u64,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub settlement_batch: u64,
    pub close_markets_every_secs: u64,
    pub max_lag_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            enabled_in_serve: true,
            concurrency: 4,
            lease_secs: 30,
            heartbeat_secs: 10,
            poll_ms: 100,
            grace_secs: 10,
            retry_base_ms: 1_000,
            retry_max_secs: 300,
            settlement_batch: 500,
            close_markets_every_secs: 60,
            max_lag_secs: 300,
        }
    }
}

/// `[auth]`: tokens and password hashing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `JWT_SECRET`; see [`Config::jwt_secret_or_ephemeral`].
    pub jwt_secret: Option<SecretString>,
    /// `iss` claim, default `prediction-markets`.
    pub jwt_issuer: String,
    /// `aud` claim, default `prediction-markets-api`.
    pub jwt_audience: String,
    /// Access token lifetime, default 900 s.
    pub access_token_ttl_secs: u64,
    /// Bearer sessions: idle timeout (no refresh), default 7 days.
    pub refresh_idle_secs: u64,
    /// Bearer sessions: absolute lifetime, default 30 days.
    pub refresh_absolute_secs: u64,
    /// Cookie sessions: idle timeout, default 30 minutes.
    pub cookie_idle_secs: u64,
    /// Cookie sessions: absolute lifetime, default 12 hours.
    pub cookie_absolute_secs: u64,
    /// `Secure` session cookies (`__Host-` prefix); `None` (default) means outside `local`.
    pub cookie_secure: Option<bool>,
    /// How long a session read from the database is trusted, default 500 ms (at most 1 s).
    pub session_check_ttl_ms: u64,
    /// Password hashes computed at once; `None` (default) means half the CPUs, at least one.
    pub hash_concurrency: Option<usize>,
    /// Argon2id memory cost in KiB, default 9216 (9 MiB; with 4 passes, one of OWASP's settings).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations, default 4.
    pub argon2_iterations: u32,
    /// Argon2id parallelism, default 1.
    pub argon2_parallelism: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_issuer: "prediction-markets".to_owned(),
            jwt_audience: "prediction-markets-api".to_owned(),
            access_token_ttl_secs: 900,
            refresh_idle_secs: 7 * 24 * 60 * 60,
            refresh_absolute_secs: 30 * 24 * 60 * 60,
            cookie_idle_secs: 30 * 60,
            cookie_absolute_secs: 12 * 60 * 60,
            cookie_secure: None,
            session_check_ttl_ms: 500,
            hash_concurrency: None,
            argon2_memory_kib: 9_216,
            argon2_iterations: 4,
            argon2_parallelism: 1,
        }
    }
}

impl AuthConfig {
    /// Session lifetimes and the session-check cache, as the use cases take them.
    #[must_use]
    pub fn session_settings(&self) -> application::sessions::SessionSettings {
        application::sessions::SessionSettings {
            bearer: domain::SessionLifetime {
                idle: std::time::Duration::from_secs(self.refresh_idle_secs),
                absolute: std::time::Duration::from_secs(self.refresh_absolute_secs),
            },
            cookie: domain::SessionLifetime {
                idle: std::time::Duration::from_secs(self.cookie_idle_secs),
                absolute: std::time::Duration::from_secs(self.cookie_absolute_secs),
            },
            check_cache_ttl: std::time::Duration::from_millis(self.session_check_ttl_ms),
        }
    }

    /// [`AuthConfig::hash_concurrency`], or half the CPUs (at least one) when unset: each hash
    /// holds `argon2_memory_kib` while it runs, and sign-in bursts must not take every core.
    #[must_use]
    pub fn effective_hash_concurrency(&self) -> usize {
        self.hash_concurrency
            .unwrap_or_else(|| (available_cpus() / 2).max(1))
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `LOG_FORMAT`; `None` (default) means [`LogFormat::Pretty`] in `local` and
    /// [`LogFormat::Json`] elsewhere. Use [`Config::log_format`].
    pub format: Option<LogFormat>,
}

/// `[markets]`: business settings of the example domain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusinessConfig {
    /// Credits of a new user, a decimal string with at most two places, default `"1000.00"`.
    /// [`Config::validate`] checks it with `domain::Amount::parse`.
    pub starting_balance: String,
}

impl Default for BusinessConfig {
    fn default() -> Self {
        Self {
            starting_balance: "1000.00".to_owned(),
        }
    }
}

impl BusinessConfig {
    /// The starting balance as an amount.
    ///
    /// # Errors
    /// When it is not a valid amount (never after [`Config::validate`]).
    pub fn starting_balance_amount(&self) -> Result<domain::Amount, domain::money::AmountError> {
        domain::Amount::parse(&self.starting_balance)
    }
}

/// `[uploads]`: uploaded market images.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadsConfig {
    /// Largest image accepted, in bytes, default 5 MiB, 1 KiB..=64 MiB.
    pub max_image_bytes: usize,
    /// Where images and thumbnails are kept, default `data/uploads`.
    pub dir: PathBuf,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            max_image_bytes: 5 * 1024 * 1024,
            dir: PathBuf::from("data/uploads"),
        }
    }
}

/// `[rate_limit]`: limits on `/api/v1` per client IP, per user and per route group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub anonymous_per_minute: u32,
    pub user_per_minute: u32,
    pub sign_in_per_minute: u32,
    pub sign_in_per_account_per_hour: u32,
    pub register_per_hour: u32,
    pub uploads_per_hour: u32,
    /// Comma-separated IP addresses and CIDR blocks; empty trusts no proxy.
    pub trusted_proxies: String,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            anonymous_per_minute: 120,
            user_per_minute: 600,
            sign_in_per_minute: 10,
            sign_in_per_account_per_hour: 20,
            register_per_hour: 20,
            uploads_per_hour: 60,
            trusted_proxies: String::new(),
        }
    }
}

/// Bad configuration: one line naming the key as the user sets it, for example
/// `invalid configuration: PORT (http.port): invalid type: found string "abc", expected u16`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    key: String,
    message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: one_line(&message.into()),
        }
    }

    /// An error about the key at `path` (`http.port`), named by its environment variable and path.
    fn at(path: &str, message: impl Into<String>) -> Self {
        Self::new(describe_key(path), message)
    }

    /// The key as the user sets it, e.g. `PORT (http.port)` or `--config ./app.toml`.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What is wrong with it.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Config {
    /// Loads defaults < the TOML `file` (when given; it must exist) < the process environment,
    /// then [`validates`](Config::validate).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad key.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if env_path(name).is_none() {
                continue;
            }
            match value.into_string() {
                Ok(value) => vars.push((name.to_owned(), value)),
                Err(_) => return Err(ConfigError::new(name, "is not valid UTF-8")),
            }
        }
        Self::load_with_env(file, vars)
    }

    /// Like [`Config::load`] but reads the environment from `vars` (name, value) instead of the
    /// process, so tests can build any configuration without touching global state.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad key.
    pub fn load_with_env<I, K, V>(file: Option<&Path>, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env = EnvLayer::new(vars);
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    format!("--config {}", path.display()),
                    "file not found",
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Self = figment
            .merge(env.clone())
            .extract()
            .map_err(|error| from_figment(&error, &env.origins, file))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every bound; the first violation is returned.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        let host = http.host.as_str();
        if host.is_empty() || host.len() > 253 || host.contains(char::is_whitespace) {
            return Err(ConfigError::at(
                "http.host",
                "must be an IP address or host name (1 to 253 characters, no spaces)",
            ));
        }
        check_range("http.json_limit_bytes", http.json_limit_bytes, 1..=16 * MIB)?;
        if let Some(workers) = http.workers {
            check_range("http.workers", workers, 1..=1024)?;
        }
        check_range(
            "http.client_request_timeout_ms",
            http.client_request_timeout_ms,
            1..=300_000,
        )?;
        check_range(
            "http.shutdown_timeout_secs",
            http.shutdown_timeout_secs,
            0..=3_600,
        )?;
        check_range(
            "http.shutdown_drain_secs",
            http.shutdown_drain_secs,
            0..=300,
        )?;

        let db = &self.database;
        let primary = check_database_url("database.url", db.url.expose_secret())?;
        if let Some(read_url) = &db.read_url {
            let replica = check_database_url("database.read_url", read_url.expose_secret())?;
            if replica != primary {
                return Err(ConfigError::at(
                    "database.read_url",
                    "must point to the same kind of database as DATABASE_URL",
                ));
            }
        }
        check_range("database.max_connections", db.max_connections, 1..=1_000)?;
        check_range(
            "database.min_connections",
            db.min_connections,
            0..=db.max_connections,
        )?;
        check_range(
            "database.acquire_timeout_ms",
            db.acquire_timeout_ms,
            1..=300_000,
        )?;
        check_range(
            "database.idle_timeout_secs",
            db.idle_timeout_secs,
            1..=86_400,
        )?;
        check_range(
            "database.statement_timeout_ms",
            db.statement_timeout_ms,
            0..=3_600_000,
        )?;
        check_range(
            "database.slow_statement_ms",
            db.slow_statement_ms,
            1..=3_600_000,
        )?;
        check_range(
            "database.read_your_writes_ms",
            db.read_your_writes_ms,
            0..=600_000,
        )?;
        check_range(
            "database.connect_retry_secs",
            db.connect_retry_secs,
            0..=600,
        )?;
        check_range(
            "http.idempotency_ttl_secs",
            self.http.idempotency_ttl_secs,
            60..=604_800,
        )?;
        check_range(
            "http.idempotency_lease_secs",
            self.http.idempotency_lease_secs,
            1..=3_600,
        )?;
        check_range(
            "http.ws_max_connections",
            self.http.ws_max_connections,
            1..=100_000,
        )?;
        check_range(
            "http.ws_client_buffer",
            self.http.ws_client_buffer,
            1..=10_000,
        )?;
        check_range(
            "http.ws_heartbeat_secs",
            self.http.ws_heartbeat_secs,
            1..=300,
        )?;
        check_origins("http.ws_allowed_origins", &self.http.ws_origins())?;
        check_origins("http.cors_allowed_origins", &self.http.cors_origins())?;
        check_tls_paths(&self.http)?;

        if let Some(url) = &self.redis.url {
            let url = url.expose_secret();
            if !["redis://", "rediss://", "redis+unix://", "unix://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
            {
                return Err(ConfigError::at(
                    "redis.url",
                    "must start with redis://, rediss://, redis+unix:// or unix://",
                ));
            }
        }

        let cache = &self.cache;
        check_range("cache.market_ttl_secs", cache.market_ttl_secs, 1..=86_400)?;
        check_range("cache.list_ttl_secs", cache.list_ttl_secs, 1..=3_600)?;
        check_range(
            "cache.not_found_ttl_secs",
            cache.not_found_ttl_secs,
            1..=3_600,
        )?;
        check_range("cache.jitter_percent", cache.jitter_percent, 0..=50)?;
        check_range(
            "cache.memory_max_bytes",
            cache.memory_max_bytes,
            64 * 1024..=4 * 1024 * 1024 * 1024,
        )?;
        check_range("cache.memory_ttl_secs", cache.memory_ttl_secs, 1..=3_600)?;
        let prefix = &self.redis.key_prefix;
        if prefix.is_empty() || prefix.len() > 64 || prefix.contains(char::is_whitespace) {
            return Err(ConfigError::at(
                "redis.key_prefix",
                "must be 1 to 64 bytes without spaces",
            ));
        }
        check_range("cache.redis_pool_size", cache.redis_pool_size, 1..=1_024)?;
        check_range(
            "cache.redis_command_timeout_ms",
            cache.redis_command_timeout_ms,
            1..=10_000,
        )?;
        check_range(
            "cache.redis_connect_timeout_ms",
            cache.redis_connect_timeout_ms,
            1..=60_000,
        )?;
        check_range("cache.breaker_failures", cache.breaker_failures, 1..=1_000)?;
        check_range("cache.breaker_open_ms", cache.breaker_open_ms, 10..=600_000)?;

        let events = &self.events;
        check_range("events.relay_poll_ms", events.relay_poll_ms, 1..=10_000)?;
        check_range("events.relay_batch", events.relay_batch, 1..=10_000)?;
        check_range(
            "events.relay_lease_ms",
            events.relay_lease_ms,
            100..=600_000,
        )?;
        check_range("events.bus_capacity", events.bus_capacity, 16..=1_048_576)?;
        check_range(
            "events.stream_max_len",
            events.stream_max_len,
            1_000..=100_000_000,
        )?;

        let jobs = &self.jobs;
        check_range("jobs.concurrency", jobs.concurrency, 1..=1_024)?;
        check_range("jobs.lease_secs", jobs.lease_secs, 1..=3_600)?;
        check_range("jobs.heartbeat_secs", jobs.heartbeat_secs, 1..=3_600)?;
        if jobs.heartbeat_secs >= jobs.lease_secs {
            return Err(ConfigError::at(
                "jobs.heartbeat_secs",
                format!(
                    "must be less than jobs.lease_secs ({}), or leases run out between heartbeats (got {})",
                    jobs.lease_secs, jobs.heartbeat_secs
                ),
            ));
        }
        check_range("jobs.poll_ms", jobs.poll_ms, 1..=60_000)?;
        check_range("jobs.grace_secs", jobs.grace_secs, 0..=3_600)?;
        check_range("jobs.retry_base_ms", jobs.retry_base_ms, 1..=3_600_000)?;
        check_range("jobs.retry_max_secs", jobs.retry_max_secs, 1..=86_400)?;
        check_range("jobs.settlement_batch", jobs.settlement_batch, 1..=10_000)?;
        check_range(
            "jobs.close_markets_every_secs",
            jobs.close_markets_every_secs,
            1..=86_400,
        )?;
        check_range("jobs.max_lag_secs", jobs.max_lag_secs, 1..=86_400)?;

        let auth = &self.auth;
        match &auth.jwt_secret {
            None if self.env.is_production() => {
                return Err(ConfigError::at(
                    "auth.jwt_secret",
                    format!(
                        "is required with APP_ENV=production (at least {MIN_JWT_SECRET_BYTES} bytes)"
                    ),
                ));
            }
            Some(secret) if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES => {
                return Err(ConfigError::at(
                    "auth.jwt_secret",
                    format!(
                        "must be at least {MIN_JWT_SECRET_BYTES} bytes (got {})",
                        secret.expose_secret().len()
                    ),
                ));
            }
            _ => {}
        }
        check_text("auth.jwt_issuer", &auth.jwt_issuer)?;
        check_text("auth.jwt_audience", &auth.jwt_audience)?;
        check_range(
            "auth.access_token_ttl_secs",
            auth.access_token_ttl_secs,
            60..=86_400,
        )?;
        const YEAR: u64 = 365 * 24 * 60 * 60;
        check_range("auth.refresh_idle_secs", auth.refresh_idle_secs, 60..=YEAR)?;
        check_range(
            "auth.refresh_absolute_secs",
            auth.refresh_absolute_secs,
            auth.refresh_idle_secs.max(60)..=YEAR,
        )?;
        check_range("auth.cookie_idle_secs", auth.cookie_idle_secs, 60..=YEAR)?;
        check_range(
            "auth.cookie_absolute_secs",
            auth.cookie_absolute_secs,
            auth.cookie_idle_secs.max(60)..=YEAR,
        )?;
        check_range(
            "auth.session_check_ttl_ms",
            auth.session_check_ttl_ms,
            0..=1000,
        )?;
        if let Some(concurrency) = auth.hash_concurrency {
            check_range("auth.hash_concurrency", concurrency, 1..=1024)?;
        }
        check_range("auth.argon2_parallelism", auth.argon2_parallelism, 1..=64)?;
        check_range("auth.argon2_iterations", auth.argon2_iterations, 1..=64)?;
        check_range(
            "auth.argon2_memory_kib",
            auth.argon2_memory_kib,
            8 * auth.argon2_parallelism..=4_194_304,
        )?;

        let search = &self.search;
        check_range("search.dimensions", search.dimensions, 8..=8_192)?;
        check_range("search.timeout_ms", search.timeout_ms, 1..=300_000)?;
        check_range("search.retries", search.retries, 0..=10)?;
        check_text("search.model", &search.model)?;
        if search.model.len() > 200 {
            return Err(ConfigError::at("search.model", "must be 1 to 200 bytes"));
        }
        if search.embedder == EmbedderKind::Openai && !search.base_url.starts_with("http://") {
            return Err(ConfigError::at(
                "search.base_url",
                "must be an http:// URL (this client speaks plain HTTP: put a TLS proxy in front of a hosted API)",
            ));
        }

        if let Err(error) = self.markets.starting_balance_amount() {
            return Err(ConfigError::at(
                "markets.starting_balance",
                error.to_string(),
            ));
        }

        let uploads = &self.uploads;
        check_range(
            "uploads.max_image_bytes",
            uploads.max_image_bytes,
            1_024..=64 * 1_024 * 1_024,
        )?;
        if uploads.dir.as_os_str().is_empty() {
            return Err(ConfigError::at("uploads.dir", "must not be empty"));
        }

        let limits = &self.rate_limit;
        for (path, value) in [
            (
                "rate_limit.anonymous_per_minute",
                limits.anonymous_per_minute,
            ),
            ("rate_limit.user_per_minute", limits.user_per_minute),
            ("rate_limit.sign_in_per_minute", limits.sign_in_per_minute),
            (
                "rate_limit.sign_in_per_account_per_hour",
                limits.sign_in_per_account_per_hour,
            ),
            ("rate_limit.register_per_hour", limits.register_per_hour),
            ("rate_limit.uploads_per_hour", limits.uploads_per_hour),
        ] {
            check_range(path, value, 1..=1_000_000_000)?;
        }
        if let Err(error) = adapter_http::rate_limit::TrustedProxies::parse(&limits.trusted_proxies)
        {
            return Err(ConfigError::at(
                "rate_limit.trusted_proxies",
                error.to_string(),
            ));
        }

        self.mail
            .validate()
            .map_err(|error| ConfigError::at(&format!("mail.{}", error.key), error.message))?;
        Ok(())
    }

    /// The log format: `LOG_FORMAT` when set, else pretty in `local` and JSON elsewhere.
    #[must_use]
    pub fn log_format(&self) -> LogFormat {
        self.log.format.unwrap_or(match self.env {
            AppEnv::Local => LogFormat::Pretty,
            AppEnv::Test | AppEnv::Production => LogFormat::Json,
        })
    }

    /// The JWT signing secret, and whether it was generated just now.
    ///
    /// Without `JWT_SECRET` (only possible outside production once validated) this returns 32
    /// random bytes, hex-encoded, and `true`: the caller should warn that tokens will not survive
    /// a restart and are not shared between instances.
    #[must_use]
    pub fn jwt_secret_or_ephemeral(&self) -> (SecretString, bool) {
        match &self.auth.jwt_secret {
            Some(secret) => (secret.clone(), false),
            None => (ephemeral_secret(), true),
        }
    }
}

/// 32 random bytes, hex-encoded (64 characters).
fn ephemeral_secret() -> SecretString {
    use rand::RngExt as _;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0_u8; MIN_JWT_SECRET_BYTES];
    rand::rng().fill(&mut bytes[..]);
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    SecretString::from(text)
}

fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn check_range<T>(path: &str, value: T, range: RangeInclusive<T>) -> Result<(), ConfigError>
where
    T: PartialOrd + fmt::Display,
{
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::at(
            path,
            format!(
                "must be between {} and {} (got {value})",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn check_text(path: &str, text: &str) -> Result<(), ConfigError> {
    if text.trim().is_empty() || text.len() > 255 {
        Err(ConfigError::at(path, "must be 1 to 255 bytes, not blank"))
    } else {
        Ok(())
    }
}

/// The database kind of `url`; the error never echoes the URL (it may hold a password).
fn check_database_url(path: &str, url: &str) -> Result<DatabaseKind, ConfigError> {
    DatabaseKind::of_url(url).ok_or_else(|| {
        ConfigError::at(
            path,
            "must start with sqlite:, postgres:// or postgresql://",
        )
    })
}

/// The file of a `sqlite:` URL: `sqlite://data/x.db?mode=rwc` -> `data/x.db`,
/// `sqlite:///abs/x.db` -> `/abs/x.db`; `None` for in-memory databases and other schemes.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (file, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        file.is_empty() || file == ":memory:" || query.split('&').any(|pair| pair == "mode=memory");
    (!in_memory).then(|| PathBuf::from(file))
}

/// Collapses a possibly multi-line message (TOML parse errors quote the source) into one line.
fn one_line(message: &str) -> String {
    if !message.contains('\n') {
        return message.to_owned();
    }
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains('|'))
        .collect::<Vec<_>>()
        .join(": ")
}

// ---------------------------------------------------------------------------------------------
// Environment layer
// ---------------------------------------------------------------------------------------------

/// One configuration key: its path, its environment name and whether its value is text.
struct Key {
    path: &'static str,
    env: &'static str,
    /// A stable contract name (`PORT`) rather than the derived `APP_<SECTION>__<KEY>` form.
    stable: bool,
    /// Taken verbatim from the environment (never parsed as a number, array, ...).
    text: bool,
}

const fn key(path: &'static str, env: &'static str, stable: bool, text: bool) -> Key {
    Key {
        path,
        env,
        stable,
        text,
    }
}

/// Every key; the module documentation lists the same ones.
const KEYS: &[Key] = &[
    key("env", "APP_ENV", true, true),
    key("http.host", "HOST", true, true),
    key("http.port", "PORT", true, false),
    key(
        "http.json_limit_bytes",
        "APP_HTTP__JSON_LIMIT_BYTES",
        false,
        false,
    ),
    key("http.workers", "APP_HTTP__WORKERS", false, false),
    key(
        "http.client_request_timeout_ms",
        "APP_HTTP__CLIENT_REQUEST_TIMEOUT_MS",
        false,
        false,
    ),
    key(
        "http.shutdown_timeout_secs",
        "APP_HTTP__SHUTDOWN_TIMEOUT_SECS",
        false,
        false,
    ),
    key(
        "http.shutdown_drain_secs",
        "APP_HTTP__SHUTDOWN_DRAIN_SECS",
        false,
        false,
    ),
    key("database.url", "DATABASE_URL", true, true),
    key("database.read_url", "DATABASE_READ_URL", true, true),
    key(
        "database.max_connections",
        "APP_DATABASE__MAX_CONNECTIONS",
        false,
        false,
    ),
    key(
        "database.min_connections",
        "APP_DATABASE__MIN_CONNECTIONS",
        false,
        false,
    ),
    key(
        "database.acquire_timeout_ms",
        "APP_DATABASE__ACQUIRE_TIMEOUT_MS",
        false,
        false,
    ),
    key(
        "database.idle_timeout_secs",
        "APP_DATABASE__IDLE_TIMEOUT_SECS",
        false,
        false,
    ),
    key(
        "database.statement_timeout_ms",
        "APP_DATABASE__STATEMENT_TIMEOUT_MS",
        false,
        false,
    ),
    key(
        "database.slow_statement_ms",
        "APP_DATABASE__SLOW_STATEMENT_MS",
        false,
        false,
    ),
    key(
        "database.read_your_writes_ms",
        "APP_DATABASE__READ_YOUR_WRITES_MS",
        false,
        false,
    ),
    key(
        "database.connect_retry_secs",
        "APP_DATABASE__CONNECT_RETRY_SECS",
        false,
        false,
    ),
    key(
        "http.idempotency_ttl_secs",
        "APP_HTTP__IDEMPOTENCY_TTL_SECS",
        false,
        false,
    ),
    key(
        "http.idempotency_lease_secs",
        "APP_HTTP__IDEMPOTENCY_LEASE_SECS",
        false,
        false,
    ),
    key(
        "http.cors_allowed_origins",
        "APP_HTTP__CORS_ALLOWED_ORIGINS",
        false,
        true,
    ),
    key(
        "http.ws_max_connections",
        "APP_HTTP__WS_MAX_CONNECTIONS",
        false,
        false,
    ),
    key(
        "http.ws_client_buffer",
        "APP_HTTP__WS_CLIENT_BUFFER",
        false,
        false,
    ),
    key(
        "http.ws_allowed_origins",
        "APP_HTTP__WS_ALLOWED_ORIGINS",
        false,
        true,
    ),
    key(
        "http.ws_heartbeat_secs",
        "APP_HTTP__WS_HEARTBEAT_SECS",
        false,
        false,
    ),
    key("http.tls_cert_path", "APP_HTTP__TLS_CERT_PATH", false, true),
    key("http.tls_key_path", "APP_HTTP__TLS_KEY_PATH", false, true),
    key("redis.url", "REDIS_URL", true, true),
    key("redis.key_prefix", "APP_REDIS__KEY_PREFIX", false, true),
    key("cache.enabled", "APP_CACHE__ENABLED", false, false),
    key(
        "cache.market_ttl_secs",
        "APP_CACHE__MARKET_TTL_SECS",
        false,
        false,
    ),
    key(
        "cache.list_ttl_secs",
        "APP_CACHE__LIST_TTL_SECS",
        false,
        false,
    ),
    key(
        "cache.not_found_ttl_secs",
        "APP_CACHE__NOT_FOUND_TTL_SECS",
        false,
        false,
    ),
    key(
        "cache.jitter_percent",
        "APP_CACHE__JITTER_PERCENT",
        false,
        false,
    ),
    key(
        "cache.memory_max_bytes",
        "APP_CACHE__MEMORY_MAX_BYTES",
        false,
        false,
    ),
    key(
        "cache.memory_ttl_secs",
        "APP_CACHE__MEMORY_TTL_SECS",
        false,
        false,
    ),
    key(
        "cache.redis_pool_size",
        "APP_CACHE__REDIS_POOL_SIZE",
        false,
        false,
    ),
    key(
        "cache.redis_command_timeout_ms",
        "APP_CACHE__REDIS_COMMAND_TIMEOUT_MS",
        false,
        false,
    ),
    key(
        "cache.redis_connect_timeout_ms",
        "APP_CACHE__REDIS_CONNECT_TIMEOUT_MS",
        false,
        false,
    ),
    key(
        "cache.breaker_failures",
        "APP_CACHE__BREAKER_FAILURES",
        false,
        false,
    ),
    key(
        "cache.breaker_open_ms",
        "APP_CACHE__BREAKER_OPEN_MS",
        false,
        false,
    ),
    key(
        "events.relay_poll_ms",
        "APP_EVENTS__RELAY_POLL_MS",
        false,
        false,
    ),
    key(
        "events.relay_batch",
        "APP_EVENTS__RELAY_BATCH",
        false,
        false,
    ),
    key(
        "events.relay_lease_ms",
        "APP_EVENTS__RELAY_LEASE_MS",
        false,
        false,
    ),
    key(
        "events.bus_capacity",
        "APP_EVENTS__BUS_CAPACITY",
        false,
        false,
    ),
    key(
        "events.stream_max_len",
        "APP_EVENTS__STREAM_MAX_LEN",
        false,
        false,
    ),
    key(
        "jobs.enabled_in_serve",
        "APP_JOBS__ENABLED_IN_SERVE",
        false,
        false,
    ),
    key("jobs.concurrency", "APP_JOBS__CONCURRENCY", false, false),
    key("jobs.lease_secs", "APP_JOBS__LEASE_SECS", false, false),
    key(
        "jobs.heartbeat_secs",
        "APP_JOBS__HEARTBEAT_SECS",
        false,
        false,
    ),
    key("jobs.poll_ms", "APP_JOBS__POLL_MS", false, false),
    key("jobs.grace_secs", "APP_JOBS__GRACE_SECS", false, false),
    key(
        "jobs.retry_base_ms",
        "APP_JOBS__RETRY_BASE_MS",
        false,
        false,
    ),
    key(
        "jobs.retry_max_secs",
        "APP_JOBS__RETRY_MAX_SECS",
        false,
        false,
    ),
    key(
        "jobs.settlement_batch",
        "APP_JOBS__SETTLEMENT_BATCH",
        false,
        false,
    ),
    key(
        "jobs.close_markets_every_secs",
        "APP_JOBS__CLOSE_MARKETS_EVERY_SECS",
        false,
        false,
    ),
    key("jobs.max_lag_secs", "APP_JOBS__MAX_LAG_SECS", false, false),
    key("auth.jwt_secret", "JWT_SECRET", true, true),
    key("auth.jwt_issuer", "APP_AUTH__JWT_ISSUER", false, true),
    key("auth.jwt_audience", "APP_AUTH__JWT_AUDIENCE", false, true),
    key(
        "auth.access_token_ttl_secs",
        "APP_AUTH__ACCESS_TOKEN_TTL_SECS",
        false,
        false,
    ),
    key(
        "auth.refresh_idle_secs",
        "APP_AUTH__REFRESH_IDLE_SECS",
        false,
        false,
    ),
    key(
        "auth.refresh_absolute_secs",
        "APP_AUTH__REFRESH_ABSOLUTE_SECS",
        false,
        false,
    ),
    key(
        "auth.cookie_idle_secs",
        "APP_AUTH__COOKIE_IDLE_SECS",
        false,
        false,
    ),
    key(
        "auth.cookie_absolute_secs",
        "APP_AUTH__COOKIE_ABSOLUTE_SECS",
        false,
        false,
    ),
    key(
        "auth.cookie_secure",
        "APP_AUTH__COOKIE_SECURE",
        false,
        false,
    ),
    key(
        "auth.session_check_ttl_ms",
        "APP_AUTH__SESSION_CHECK_TTL_MS",
        false,
        false,
    ),
    key(
        "auth.hash_concurrency",
        "APP_AUTH__HASH_CONCURRENCY",
        false,
        false,
    ),
    key(
        "auth.argon2_memory_kib",
        "APP_AUTH__ARGON2_MEMORY_KIB",
        false,
        false,
    ),
    key(
        "auth.argon2_iterations",
        "APP_AUTH__ARGON2_ITERATIONS",
        false,
        false,
    ),
    key(
        "auth.argon2_parallelism",
        "APP_AUTH__ARGON2_PARALLELISM",
        false,
        false,
    ),
    key("log.format", "LOG_FORMAT", true, true),
    key(
        "markets.starting_balance",
        "APP_MARKETS__STARTING_BALANCE",
        false,
        true,
    ),
    key(
        "uploads.max_image_bytes",
        "APP_UPLOADS__MAX_IMAGE_BYTES",
        false,
        false,
    ),
    key("uploads.dir", "APP_UPLOADS__DIR", false, true),
    key("mail.transport", "APP_MAIL__TRANSPORT", false, true),
    key("mail.from", "APP_MAIL__FROM", false, true),
    key("mail.smtp_url", "APP_MAIL__SMTP_URL", false, true),
    key("mail.file_dir", "APP_MAIL__FILE_DIR", false, true),
    key("mail.timeout_ms", "APP_MAIL__TIMEOUT_MS", false, false),
    key("mail.retries", "APP_MAIL__RETRIES", false, false),
    key(
        "mail.retry_base_ms",
        "APP_MAIL__RETRY_BASE_MS",
        false,
        false,
    ),
    key(
        "rate_limit.enabled",
        "APP_RATE_LIMIT__ENABLED",
        false,
        false,
    ),
    key(
        "rate_limit.anonymous_per_minute",
        "APP_RATE_LIMIT__ANONYMOUS_PER_MINUTE",
        false,
        false,
    ),
    key(
        "rate_limit.user_per_minute",
        "APP_RATE_LIMIT__USER_PER_MINUTE",
        false,
        false,
    ),
    key(
        "rate_limit.sign_in_per_minute",
        "APP_RATE_LIMIT__SIGN_IN_PER_MINUTE",
        false,
        false,
    ),
    key(
        "rate_limit.register_per_hour",
        "APP_RATE_LIMIT__REGISTER_PER_HOUR",
        false,
        false,
    ),
    key(
        "rate_limit.sign_in_per_account_per_hour",
        "APP_RATE_LIMIT__SIGN_IN_PER_ACCOUNT_PER_HOUR",
        false,
        false,
    ),
    key(
        "rate_limit.uploads_per_hour",
        "APP_RATE_LIMIT__UPLOADS_PER_HOUR",
        false,
        false,
    ),
    key(
        "rate_limit.trusted_proxies",
        "APP_RATE_LIMIT__TRUSTED_PROXIES",
        false,
        true,
    ),
    key("search.embedder", "APP_SEARCH__EMBEDDER", false, true),
    key("search.base_url", "APP_SEARCH__BASE_URL", false, true),
    key("search.model", "APP_SEARCH__MODEL", false, true),
    key("search.api_key", "APP_SEARCH__API_KEY", false, true),
    key("search.dimensions", "APP_SEARCH__DIMENSIONS", false, false),
    key("search.timeout_ms", "APP_SEARCH__TIMEOUT_MS", false, false),
    key("search.retries", "APP_SEARCH__RETRIES", false, false),
    key(
        "search.vector_index",
        "APP_SEARCH__VECTOR_INDEX",
        false,
        true,
    ),
];

/// Sections reachable as `APP_<SECTION>__...`; other `APP_*` variables are not ours.
const SECTIONS: &[&str] = &[
    "http",
    "database",
    "redis",
    "cache",
    "events",
    "jobs",
    "auth",
    "log",
    "markets",
    "uploads",
    "mail",
    "rate_limit",
    "search",
];

const ENV_PREFIX: &str = "APP_";

/// `PORT (http.port)` for a known key, the bare path otherwise.
fn describe_key(path: &str) -> String {
    KEYS.iter()
        .find(|key| key.path == path)
        .map_or_else(|| path.to_owned(), |key| format!("{} ({path})", key.env))
}

/// The key path an environment variable sets, and whether the name is a stable one; `None` when
/// the variable is not configuration.
fn env_path(name: &str) -> Option<(String, bool)> {
    if let Some(key) = KEYS.iter().find(|key| key.stable && key.env == name) {
        return Some((key.path.to_owned(), true));
    }
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return None;
    }
    let first = segments.first()?;
    if !SECTIONS.contains(&first.as_str()) && first != "env" {
        return None;
    }
    Some((segments.join("."), false))
}

/// The environment as a figment provider: stable names and `APP_` names mapped to key paths,
/// empty values dropped, and the variable that set each path remembered for error messages.
#[derive(Clone)]
struct EnvLayer {
    dict: Dict,
    /// key path -> the variable that set it.
    origins: Arc<BTreeMap<String, String>>,
}

impl EnvLayer {
    fn new<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        // path -> (variable, value, stable)
        let mut chosen: BTreeMap<String, (String, String, bool)> = BTreeMap::new();
        for (name, value) in vars {
            let (name, value) = (name.into(), value.into());
            if value.trim().is_empty() {
                continue;
            }
            let Some((path, stable)) = env_path(&name) else {
                continue;
            };
            let replace = match chosen.get(&path) {
                None => true,
                Some((_, _, existing_stable)) => stable && !existing_stable,
            };
            if replace {
                chosen.insert(path, (name, value, stable));
            }
        }

        let mut dict = Dict::new();
        let mut origins = BTreeMap::new();
        for (path, (name, value, _)) in chosen {
            let text = KEYS.iter().any(|key| key.path == path && key.text);
            let value = if text {
                Value::from(value)
            } else {
                value
                    .parse::<Value>()
                    .unwrap_or_else(|never| match never {})
            };
            let segments: Vec<&str> = path.split('.').collect();
            insert_nested(&mut dict, &segments, value);
            origins.insert(path, name);
        }
        Self {
            dict,
            origins: Arc::new(origins),
        }
    }
}

fn insert_nested(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [leaf] => {
            dict.insert((*leaf).to_owned(), value);
        }
        [head, rest @ ..] => {
            let entry = dict
                .entry((*head).to_owned())
                .or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::Dict(Tag::Default, Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_nested(inner, rest, value);
            }
        }
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        let origins = Arc::clone(&self.origins);
        Metadata::named("environment variable").interpolater(move |_: &Profile, keys: &[&str]| {
            let path = keys.join(".");
            origins.get(&path).cloned().unwrap_or(path)
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Turns figment's error into one line naming the key as the user set it: the environment
/// variable when it came from there, else the file key and the file.
fn from_figment(
    error: &figment::Error,
    origins: &BTreeMap<String, String>,
    file: Option<&Path>,
) -> ConfigError {
    let mut segments = error.path.clone();
    let mut message = match &error.kind {
        Kind::UnknownField(field, expected) => {
            // figment usually puts the unknown field at the end of the path already.
            if segments.last() != Some(field) {
                segments.push(field.clone());
            }
            format!("unknown key; expected one of: {}", expected.join(", "))
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value `{found}`; expected one of: {}",
                expected.join(", ")
            )
        }
        kind => kind.to_string(),
    };
    let others = error.count().saturating_sub(1);
    if others > 0 {
        message.push_str(&format!(" (and {others} more)"));
    }

    let path = segments.join(".");
    let key = if let Some(variable) = origins.get(&path) {
        format!("{variable} ({path})")
    } else if let Some(file) = file {
        if path.is_empty() {
            format!("--config {}", file.display())
        } else {
            format!("{path} in {}", file.display())
        }
    } else if path.is_empty() {
        "configuration".to_owned()
    } else {
        describe_key(&path)
    };
    ConfigError::new(key, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_with_env(None, vars.iter().copied())
    }

    #[test]
    fn job_heartbeats_must_come_before_leases_run_out() {
        let error = load_env(&[("APP_JOBS__HEARTBEAT_SECS", "30")]).expect_err("not below");
        assert_eq!(
            error.key(),
            "APP_JOBS__HEARTBEAT_SECS (jobs.heartbeat_secs)"
        );
        let error = load_env(&[("APP_JOBS__CONCURRENCY", "0")]).expect_err("out of range");
        assert_eq!(error.key(), "APP_JOBS__CONCURRENCY (jobs.concurrency)");
        let config = load_env(&[
            ("APP_JOBS__LEASE_SECS", "60"),
            ("APP_JOBS__HEARTBEAT_SECS", "30"),
            ("APP_JOBS__ENABLED_IN_SERVE", "false"),
        ])
        .expect("valid");
        assert!(!config.jobs.enabled_in_serve);
        assert_eq!(
            (config.jobs.lease_secs, config.jobs.heartbeat_secs),
            (60, 30)
        );
    }

    /// A TOML file in the temp folder, removed on drop.
    struct TempToml(PathBuf);

    impl TempToml {
        fn new(contents: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("bootstrap-config-{}.toml", uuid::Uuid::new_v4()));
            std::fs::write(&path, contents).expect("write temp config");
            Self(path)
        }
    }

    impl Drop for TempToml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = load_env(&[]).expect("defaults are valid");
        assert_eq!(config.env, AppEnv::Local);
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!(config.http.host, "127.0.0.1");
        assert_eq!(config.http.port, 8080);
        assert_eq!(config.http.json_limit_bytes, 65_536);
        assert_eq!(config.http.workers, None);
        assert_eq!(config.http.client_request_timeout_ms, 5_000);
        assert_eq!(config.http.shutdown_timeout_secs, 30);
        assert_eq!(config.database.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(
            config.database.url.expose_secret(),
            "sqlite://data/markets.db?mode=rwc"
        );
        assert!(config.database.read_url.is_none());
        assert_eq!(config.database.max_connections, 10);
        assert_eq!(config.database.min_connections, 0);
        assert_eq!(config.database.acquire_timeout_ms, 3_000);
        assert_eq!(config.database.idle_timeout_secs, 600);
        assert_eq!(config.database.statement_timeout_ms, 5_000);
        assert_eq!(config.database.connect_retry_secs, 10);
        assert_eq!(config.database.kind(), DatabaseKind::Sqlite);
        assert_eq!(
            config.database.sqlite_path(),
            Some(PathBuf::from("data/markets.db"))
        );
        assert!(config.redis.url.is_none());
        assert_eq!(config.cache, CacheConfig::default());
        assert!(config.cache.enabled);
        assert_eq!(config.cache.market_ttl_secs, 300);
        assert_eq!(config.cache.list_ttl_secs, 30);
        assert_eq!(config.cache.not_found_ttl_secs, 5);
        assert_eq!(config.cache.jitter_percent, 10);
        assert_eq!(config.cache.memory_max_bytes, 16 * 1024 * 1024);
        assert_eq!(config.cache.memory_ttl_secs, 30);
        assert_eq!(config.redis.key_prefix, "markets:");
        assert_eq!(config.cache.redis_pool_size, 32);
        assert_eq!(config.cache.redis_command_timeout_ms, 250);
        assert_eq!(config.cache.redis_connect_timeout_ms, 1_000);
        assert_eq!(config.cache.breaker_failures, 3);
        assert_eq!(config.cache.breaker_open_ms, 1_000);
        assert_eq!(config.events, EventsConfig::default());
        assert_eq!(config.events.relay_poll_ms, 25);
        assert_eq!(config.events.relay_batch, 500);
        assert_eq!(config.events.relay_lease_ms, 5_000);
        assert_eq!(config.events.bus_capacity, 4_096);
        assert_eq!(config.events.stream_max_len, 100_000);
        assert_eq!(config.jobs, JobsConfig::default());
        assert!(config.jobs.enabled_in_serve);
        assert_eq!(config.jobs.concurrency, 4);
        assert_eq!(config.jobs.lease_secs, 30);
        assert_eq!(config.jobs.heartbeat_secs, 10);
        assert_eq!(config.jobs.poll_ms, 100);
        assert_eq!(config.jobs.grace_secs, 10);
        assert_eq!(config.jobs.retry_base_ms, 1_000);
        assert_eq!(config.jobs.retry_max_secs, 300);
        assert!(config.auth.jwt_secret.is_none());
        assert_eq!(config.auth.jwt_issuer, "prediction-markets");
        assert_eq!(config.auth.jwt_audience, "prediction-markets-api");
        assert_eq!(config.auth.access_token_ttl_secs, 900);
        assert_eq!(config.auth.hash_concurrency, None);
        assert_eq!(config.auth.argon2_memory_kib, 9_216);
        assert_eq!(config.auth.argon2_iterations, 4);
        assert_eq!(config.auth.argon2_parallelism, 1);
        assert_eq!(config.log.format, None);
        assert_eq!(config.log_format(), LogFormat::Pretty);
        assert_eq!(config.markets.starting_balance, "1000.00");
        assert!(config.http.effective_workers() >= 1);
        assert!(config.auth.effective_hash_concurrency() >= 1);
        Config::default()
            .validate()
            .expect("Config::default() is valid");
    }

    #[test]
    fn debug_redacts_secrets() {
        let config = load_env(&[
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://user:hunter2@db/markets"),
            ("REDIS_URL", "redis://:hunter3@cache"),
        ])
        .expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("hunter3"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }

    #[test]
    fn toml_file_overrides_defaults() {
        let file = TempToml::new(
            r#"
            env = "test"

            [http]
            port = 9000
            json_limit_bytes = 1024

            [auth]
            access_token_ttl_secs = 120

            [log]
            format = "pretty"
            "#,
        );
        let config = Config::load_with_env(Some(&file.0), Vec::<(String, String)>::new())
            .expect("valid file");
        assert_eq!(config.env, AppEnv::Test);
        assert_eq!(config.http.port, 9000);
        assert_eq!(config.http.json_limit_bytes, 1024);
        assert_eq!(
            config.http.host, "127.0.0.1",
            "untouched keys keep defaults"
        );
        assert_eq!(config.auth.access_token_ttl_secs, 120);
        assert_eq!(config.log_format(), LogFormat::Pretty);
    }

    #[test]
    fn environment_overrides_file() {
        let file = TempToml::new("[http]\nport = 9000\nhost = \"0.0.0.0\"\n");
        let config = Config::load_with_env(
            Some(&file.0),
            [
                ("PORT", "9100"),
                ("APP_HTTP__HOST", "::1"),
                ("LOG_FORMAT", "json"),
            ],
        )
        .expect("valid");
        assert_eq!(config.http.port, 9100);
        assert_eq!(config.http.host, "::1");
        assert_eq!(config.log_format(), LogFormat::Json);
    }

    #[test]
    fn stable_name_wins_over_prefixed_form() {
        for vars in [
            [("PORT", "1111"), ("APP_HTTP__PORT", "2222")],
            [("APP_HTTP__PORT", "2222"), ("PORT", "1111")],
        ] {
            let config = load_env(&vars).expect("valid");
            assert_eq!(config.http.port, 1111);
        }
    }

    #[test]
    fn missing_config_file_is_an_error_naming_the_path() {
        let path = Path::new("/definitely/not/here/app.toml");
        let error = Config::load_with_env(Some(path), Vec::<(String, String)>::new())
            .expect_err("missing file");
        assert_eq!(
            error.to_string(),
            "invalid configuration: --config /definitely/not/here/app.toml: file not found"
        );
    }

    #[test]
    fn bad_toml_is_one_line_naming_the_file() {
        let file = TempToml::new("[http]\nport = \n");
        let error = Config::load_with_env(Some(&file.0), Vec::<(String, String)>::new())
            .expect_err("bad toml");
        let text = error.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains(&file.0.display().to_string()), "{text}");
    }

    #[test]
    fn unknown_file_key_is_named() {
        let file = TempToml::new("[http]\nprot = 9000\n");
        let error =
            Config::load_with_env(Some(&file.0), Vec::<(String, String)>::new()).expect_err("typo");
        assert_eq!(error.key(), format!("http.prot in {}", file.0.display()));
        assert!(error.message().starts_with("unknown key"), "{error}");
    }

    #[test]
    fn port_abc_names_port() {
        let error = load_env(&[("PORT", "abc")]).expect_err("bad port");
        assert_eq!(error.key(), "PORT (http.port)");
        let text = error.to_string();
        assert!(
            text.starts_with("invalid configuration: PORT (http.port): "),
            "{text}"
        );
        assert!(text.contains("abc"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn port_out_of_range_names_port() {
        let error = load_env(&[("PORT", "70000")]).expect_err("bad port");
        assert_eq!(error.key(), "PORT (http.port)");
    }

    #[test]
    fn session_and_search_bounds_are_enforced_and_named() {
        for (variable, value, key) in [
            (
                "APP_AUTH__SESSION_CHECK_TTL_MS",
                "1001",
                "auth.session_check_ttl_ms",
            ),
            (
                "APP_AUTH__REFRESH_IDLE_SECS",
                "59",
                "auth.refresh_idle_secs",
            ),
            ("APP_AUTH__COOKIE_IDLE_SECS", "0", "auth.cookie_idle_secs"),
            ("APP_SEARCH__DIMENSIONS", "7", "search.dimensions"),
            ("APP_SEARCH__RETRIES", "11", "search.retries"),
        ] {
            let error = load_env(&[(variable, value)]).expect_err(variable);
            assert_eq!(error.key(), format!("{variable} ({key})"));
        }
        // An absolute lifetime shorter than the idle one could never be reached idle.
        let error = load_env(&[
            ("APP_AUTH__COOKIE_IDLE_SECS", "3600"),
            ("APP_AUTH__COOKIE_ABSOLUTE_SECS", "1800"),
        ])
        .expect_err("absolute below idle");
        assert_eq!(
            error.key(),
            "APP_AUTH__COOKIE_ABSOLUTE_SECS (auth.cookie_absolute_secs)"
        );
        let error = load_env(&[
            ("APP_SEARCH__EMBEDDER", "openai"),
            ("APP_SEARCH__BASE_URL", "https://api.example.com/v1"),
        ])
        .expect_err("https is not spoken");
        assert_eq!(error.key(), "APP_SEARCH__BASE_URL (search.base_url)");
        let error = load_env(&[("APP_SEARCH__VECTOR_INDEX", "hnsw")]).expect_err("not a kind");
        assert_eq!(
            error.key(),
            "APP_SEARCH__VECTOR_INDEX (search.vector_index)"
        );
        let config = load_env(&[("APP_SEARCH__VECTOR_INDEX", "pgvector")]).expect("a kind");
        assert_eq!(config.search.vector_index, VectorIndexKind::Pgvector);
        let config = load_env(&[("APP_AUTH__SESSION_CHECK_TTL_MS", "1000")]).expect("one second");
        assert_eq!(config.auth.session_check_ttl_ms, 1000);
    }

    #[test]
    fn port_zero_is_allowed() {
        let config = load_env(&[("PORT", "0")]).expect("port 0 picks a free port");
        assert_eq!(config.http.port, 0);
    }

    #[test]
    fn prefixed_error_names_the_prefixed_variable() {
        let error = load_env(&[("APP_AUTH__ARGON2_ITERATIONS", "many")]).expect_err("bad");
        assert_eq!(
            error.key(),
            "APP_AUTH__ARGON2_ITERATIONS (auth.argon2_iterations)"
        );
    }

    #[test]
    fn unknown_app_env_value_is_named() {
        let error = load_env(&[("APP_ENV", "prod")]).expect_err("bad env");
        assert_eq!(
            error.to_string(),
            "invalid configuration: APP_ENV (env): unknown value `prod`; expected one of: local, test, production"
        );
    }

    #[test]
    fn enumerated_values_are_case_insensitive() {
        let config = load_env(&[
            ("APP_ENV", "Production"),
            ("JWT_SECRET", SECRET),
            ("LOG_FORMAT", "PRETTY"),
        ])
        .expect("valid");
        assert_eq!(config.env, AppEnv::Production);
        assert_eq!(config.log_format(), LogFormat::Pretty);
        assert_eq!("TEST".parse::<AppEnv>(), Ok(AppEnv::Test));
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(
            "xml"
                .parse::<LogFormat>()
                .map_err(|error| error.to_string()),
            Err("unknown value `xml`; expected one of: json, pretty".to_owned())
        );
    }

    #[test]
    fn typo_under_known_section_is_an_error_other_app_vars_are_ignored() {
        let error = load_env(&[("APP_HTTP__PROT", "1")]).expect_err("typo");
        assert_eq!(error.key(), "APP_HTTP__PROT (http.prot)");
        load_env(&[("APP_NAME", "something else"), ("APP_VERSION", "1.2")])
            .expect("not our variables");
    }

    #[test]
    fn production_without_jwt_secret_fails() {
        let error = load_env(&[("APP_ENV", "production")]).expect_err("no secret");
        assert_eq!(error.key(), "JWT_SECRET (auth.jwt_secret)");
        assert!(error.to_string().contains("required"), "{error}");
        let config = load_env(&[("APP_ENV", "production"), ("JWT_SECRET", SECRET)]).expect("valid");
        assert_eq!(config.env, AppEnv::Production);
        assert_eq!(config.log_format(), LogFormat::Json);
        let (secret, ephemeral) = config.jwt_secret_or_ephemeral();
        assert_eq!(secret.expose_secret(), SECRET);
        assert!(!ephemeral);
    }

    #[test]
    fn short_jwt_secret_fails_in_every_env() {
        for env in ["local", "test", "production"] {
            let error = load_env(&[("APP_ENV", env), ("JWT_SECRET", "too-short")])
                .expect_err("short secret");
            assert_eq!(
                error.to_string(),
                "invalid configuration: JWT_SECRET (auth.jwt_secret): must be at least 32 bytes (got 9)"
            );
        }
    }

    #[test]
    fn numeric_looking_secret_stays_text() {
        let secret = "12345678901234567890123456789012345";
        let config = load_env(&[("JWT_SECRET", secret)]).expect("valid");
        let (value, _) = config.jwt_secret_or_ephemeral();
        assert_eq!(value.expose_secret(), secret);
    }

    #[test]
    fn local_without_secret_gets_an_ephemeral_one() {
        let config = load_env(&[]).expect("valid");
        let (first, ephemeral) = config.jwt_secret_or_ephemeral();
        assert!(ephemeral);
        assert!(first.expose_secret().len() >= MIN_JWT_SECRET_BYTES);
        let (second, _) = config.jwt_secret_or_ephemeral();
        assert_ne!(first.expose_secret(), second.expose_secret());
    }

    #[test]
    fn app_prefixed_keys_reach_every_section() {
        let config = load_env(&[
            ("APP_HTTP__JSON_LIMIT_BYTES", "1024"),
            ("APP_HTTP__WORKERS", "3"),
            ("APP_AUTH__ACCESS_TOKEN_TTL_SECS", "60"),
            ("APP_AUTH__JWT_ISSUER", "issuer"),
            ("APP_DATABASE__MAX_CONNECTIONS", "4"),
            ("APP_DATABASE__MIN_CONNECTIONS", "2"),
            ("APP_MARKETS__STARTING_BALANCE", "50"),
            ("APP_LOG__FORMAT", "json"),
        ])
        .expect("valid");
        assert_eq!(config.http.json_limit_bytes, 1024);
        assert_eq!(config.http.workers, Some(3));
        assert_eq!(config.http.effective_workers(), 3);
        assert_eq!(config.auth.access_token_ttl_secs, 60);
        assert_eq!(config.auth.jwt_issuer, "issuer");
        assert_eq!(config.database.max_connections, 4);
        assert_eq!(config.database.min_connections, 2);
        assert_eq!(config.markets.starting_balance, "50");
        assert_eq!(config.log_format(), LogFormat::Json);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = load_env(&[
            ("REDIS_URL", ""),
            ("DATABASE_READ_URL", ""),
            ("JWT_SECRET", ""),
            ("PORT", ""),
        ])
        .expect("valid");
        assert!(config.redis.url.is_none());
        assert!(config.database.read_url.is_none());
        assert!(config.auth.jwt_secret.is_none());
        assert_eq!(config.http.port, 8080);
    }

    #[test]
    fn bounds_are_enforced_and_named() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "APP_HTTP__JSON_LIMIT_BYTES",
                "0",
                "APP_HTTP__JSON_LIMIT_BYTES (http.json_limit_bytes)",
            ),
            (
                "APP_HTTP__JSON_LIMIT_BYTES",
                "16777217",
                "APP_HTTP__JSON_LIMIT_BYTES (http.json_limit_bytes)",
            ),
            (
                "APP_AUTH__ACCESS_TOKEN_TTL_SECS",
                "59",
                "APP_AUTH__ACCESS_TOKEN_TTL_SECS (auth.access_token_ttl_secs)",
            ),
            (
                "APP_AUTH__ACCESS_TOKEN_TTL_SECS",
                "86401",
                "APP_AUTH__ACCESS_TOKEN_TTL_SECS (auth.access_token_ttl_secs)",
            ),
            (
                "APP_DATABASE__MAX_CONNECTIONS",
                "0",
                "APP_DATABASE__MAX_CONNECTIONS (database.max_connections)",
            ),
            (
                "APP_DATABASE__MIN_CONNECTIONS",
                "11",
                "APP_DATABASE__MIN_CONNECTIONS (database.min_connections)",
            ),
            (
                "DATABASE_URL",
                "mysql://db/x",
                "DATABASE_URL (database.url)",
            ),
            (
                "DATABASE_READ_URL",
                "postgres://replica/x",
                "DATABASE_READ_URL (database.read_url)",
            ),
            ("REDIS_URL", "localhost:6379", "REDIS_URL (redis.url)"),
            ("HOST", "local host", "HOST (http.host)"),
            (
                "APP_MARKETS__STARTING_BALANCE",
                "-1",
                "APP_MARKETS__STARTING_BALANCE (markets.starting_balance)",
            ),
            (
                "APP_MARKETS__STARTING_BALANCE",
                "1.234",
                "APP_MARKETS__STARTING_BALANCE (markets.starting_balance)",
            ),
            (
                "APP_AUTH__ARGON2_MEMORY_KIB",
                "4",
                "APP_AUTH__ARGON2_MEMORY_KIB (auth.argon2_memory_kib)",
            ),
            ("LOG_FORMAT", "xml", "LOG_FORMAT (log.format)"),
        ];
        for (name, value, key) in cases {
            let error = load_env(&[(name, value)]).expect_err(name);
            assert_eq!(error.key(), *key, "{name}={value}: {error}");
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn database_url_errors_do_not_echo_the_url() {
        let error = load_env(&[("DATABASE_URL", "mysql://root:hunter2@db/x")]).expect_err("bad");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn cors_origins_are_a_checked_list() {
        let config = load_env(&[("APP_HTTP__CORS_ALLOWED_ORIGINS", "https://a.example.com")])
            .expect("valid");
        assert_eq!(config.http.cors_origins(), ["https://a.example.com"]);
        assert!(Config::default().http.cors_origins().is_empty());
        let error = load_env(&[("APP_HTTP__CORS_ALLOWED_ORIGINS", "*.example.com")])
            .expect_err("no scheme");
        assert_eq!(
            error.key(),
            "APP_HTTP__CORS_ALLOWED_ORIGINS (http.cors_allowed_origins)"
        );
    }

    #[test]
    fn websocket_origins_are_a_checked_list() {
        let config = load_env(&[(
            "APP_HTTP__WS_ALLOWED_ORIGINS",
            " https://a.example.com, http://localhost:3000 ,",
        )])
        .expect("valid");
        assert_eq!(
            config.http.ws_origins(),
            ["https://a.example.com", "http://localhost:3000"]
        );
        let error =
            load_env(&[("APP_HTTP__WS_ALLOWED_ORIGINS", "a.example.com")]).expect_err("no scheme");
        assert_eq!(
            error.key(),
            "APP_HTTP__WS_ALLOWED_ORIGINS (http.ws_allowed_origins)"
        );
        assert!(load_env(&[("APP_HTTP__WS_MAX_CONNECTIONS", "0")]).is_err());
    }

    #[test]
    fn caching_can_be_turned_off_and_its_bounds_are_checked() {
        let config = load_env(&[
            ("APP_CACHE__ENABLED", "false"),
            ("APP_REDIS__KEY_PREFIX", "svc:"),
        ])
        .expect("valid");
        assert!(!config.cache.enabled);
        assert_eq!(config.redis.key_prefix, "svc:");
        let error = load_env(&[("APP_CACHE__JITTER_PERCENT", "60")]).expect_err("too much");
        assert_eq!(
            error.key(),
            "APP_CACHE__JITTER_PERCENT (cache.jitter_percent)"
        );
        let error = load_env(&[("APP_REDIS__KEY_PREFIX", "a b")]).expect_err("a space");
        assert_eq!(error.key(), "APP_REDIS__KEY_PREFIX (redis.key_prefix)");
        let error = load_env(&[("APP_CACHE__ENABLED", "maybe")]).expect_err("not a bool");
        assert_eq!(error.key(), "APP_CACHE__ENABLED (cache.enabled)");
    }

    #[test]
    fn postgres_with_matching_replica_and_redis_is_accepted() {
        let config = load_env(&[
            ("DATABASE_URL", "postgres://app@primary/markets"),
            ("DATABASE_READ_URL", "postgresql://app@replica/markets"),
            ("REDIS_URL", "redis://cache:6379"),
        ])
        .expect("valid");
        assert_eq!(config.database.kind(), DatabaseKind::Postgres);
        assert_eq!(config.database.sqlite_path(), None);
        config
            .database
            .ensure_sqlite_dir()
            .expect("no-op for postgres");
        assert!(config.redis.url.is_some());
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/m.db?mode=rwc"),
            Some(PathBuf::from("data/m.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/m.db"),
            Some(PathBuf::from("/tmp/m.db"))
        );
        assert_eq!(sqlite_path("sqlite:m.db"), Some(PathBuf::from("m.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://:memory:"), None);
        assert_eq!(
            sqlite_path("sqlite://file.db?mode=memory&cache=shared"),
            None
        );
        assert_eq!(sqlite_path("postgres://db/x"), None);
    }

    #[test]
    fn ensure_sqlite_dir_creates_the_folder() {
        let dir = std::env::temp_dir().join(format!("bootstrap-config-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/nested/m.db?mode=rwc", dir.display());
        let config = load_env(&[("DATABASE_URL", url.as_str())]).expect("valid");
        config.database.ensure_sqlite_dir().expect("create dir");
        assert!(dir.join("nested").is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mail_is_logged_by_default_and_smtp_needs_a_usable_url() {
        let config = load_env(&[]).expect("defaults are valid");
        assert_eq!(config.mail.transport, adapter_mail::MailTransport::Log);
        assert_eq!(config.mail.from, "Prediction Markets <noreply@example.com>");
        assert!(config.mail.smtp_url.is_none());
        assert_eq!(config.mail.file_dir, PathBuf::from("data/mail"));
        assert_eq!(config.mail.timeout_ms, 10_000);
        assert_eq!(config.mail.retries, 3);
        assert_eq!(config.mail.retry_base_ms, 500);

        let smtp = load_env(&[
            ("APP_MAIL__TRANSPORT", "smtp"),
            (
                "APP_MAIL__SMTP_URL",
                "smtp://mailer:hunter2@mail.example.com:587",
            ),
            ("APP_MAIL__RETRIES", "5"),
        ])
        .expect("valid");
        assert_eq!(smtp.mail.transport, adapter_mail::MailTransport::Smtp);
        assert_eq!(smtp.mail.retries, 5);
        assert!(!format!("{smtp:?}").contains("hunter2"));

        let missing = load_env(&[("APP_MAIL__TRANSPORT", "smtp")]).expect_err("no URL");
        assert_eq!(missing.key(), "APP_MAIL__SMTP_URL (mail.smtp_url)");
        let wrong = load_env(&[
            ("APP_MAIL__TRANSPORT", "smtp"),
            (
                "APP_MAIL__SMTP_URL",
                "http://mailer:hunter2@mail.example.com",
            ),
        ])
        .expect_err("not SMTP");
        assert_eq!(wrong.key(), "APP_MAIL__SMTP_URL (mail.smtp_url)");
        assert!(!wrong.to_string().contains("hunter2"), "{wrong}");
        let transport = load_env(&[("APP_MAIL__TRANSPORT", "pigeon")]).expect_err("unknown");
        assert!(transport.key().contains("mail.transport"), "{transport}");
        let retries = load_env(&[("APP_MAIL__RETRIES", "11")]).expect_err("too many");
        assert_eq!(retries.key(), "APP_MAIL__RETRIES (mail.retries)");
    }

    #[test]
    fn rate_limits_have_documented_defaults_and_bounds() {
        let config = load_env(&[]).expect("defaults are valid");
        assert_eq!(config.rate_limit, RateLimitConfig::default());
        assert!(config.rate_limit.enabled);
        assert_eq!(config.rate_limit.anonymous_per_minute, 120);
        assert_eq!(config.rate_limit.user_per_minute, 600);
        assert_eq!(config.rate_limit.sign_in_per_minute, 10);
        assert_eq!(config.rate_limit.register_per_hour, 20);
        assert_eq!(config.rate_limit.uploads_per_hour, 60);
        assert_eq!(config.rate_limit.trusted_proxies, "");

        let set = load_env(&[
            ("APP_RATE_LIMIT__ENABLED", "false"),
            ("APP_RATE_LIMIT__SIGN_IN_PER_MINUTE", "3"),
            ("APP_RATE_LIMIT__TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ])
        .expect("valid");
        assert!(!set.rate_limit.enabled);
        assert_eq!(set.rate_limit.sign_in_per_minute, 3);
        assert_eq!(set.rate_limit.trusted_proxies, "10.0.0.0/8, 127.0.0.1");

        let zero = load_env(&[("APP_RATE_LIMIT__USER_PER_MINUTE", "0")]).expect_err("zero");
        assert_eq!(
            zero.key(),
            "APP_RATE_LIMIT__USER_PER_MINUTE (rate_limit.user_per_minute)"
        );
        let proxy =
            load_env(&[("APP_RATE_LIMIT__TRUSTED_PROXIES", "10.0.0.0/40")]).expect_err("bad");
        assert_eq!(
            proxy.key(),
            "APP_RATE_LIMIT__TRUSTED_PROXIES (rate_limit.trusted_proxies)"
        );
        let unknown = load_env(&[("APP_RATE_LIMIT__PER_DAY", "5")]).expect_err("unknown key");
        assert!(unknown.to_string().contains("unknown key"), "{unknown}");
    }

    #[test]
    fn tls_files_are_named_together() {
        let config = load_env(&[]).expect("defaults");
        assert_eq!(config.http.tls_paths(), None);

        let both = load_env(&[
            ("APP_HTTP__TLS_CERT_PATH", "/etc/tls/cert.pem"),
            ("APP_HTTP__TLS_KEY_PATH", "/etc/tls/key.pem"),
        ])
        .expect("both");
        assert_eq!(
            both.http.tls_paths(),
            Some((
                Path::new("/etc/tls/cert.pem"),
                Path::new("/etc/tls/key.pem")
            ))
        );

        let cert_only =
            load_env(&[("APP_HTTP__TLS_CERT_PATH", "/etc/tls/cert.pem")]).expect_err("no key");
        assert_eq!(
            cert_only.key(),
            "APP_HTTP__TLS_KEY_PATH (http.tls_key_path)"
        );
        assert!(
            cert_only.message().contains("http.tls_cert_path"),
            "{cert_only}"
        );
        let key_only =
            load_env(&[("APP_HTTP__TLS_KEY_PATH", "/etc/tls/key.pem")]).expect_err("no cert");
        assert_eq!(
            key_only.key(),
            "APP_HTTP__TLS_CERT_PATH (http.tls_cert_path)"
        );
    }

    #[test]
    fn every_documented_key_is_in_the_module_doc() {
        let doc: String = include_str!("config.rs")
            .lines()
            .filter(|line| line.starts_with("//!"))
            .collect();
        for key in KEYS {
            assert!(
                doc.contains(&format!("`{}`", key.path)),
                "{} undocumented",
                key.path
            );
            assert!(
                doc.contains(&format!("`{}`", key.env)),
                "{} undocumented",
                key.env
            );
        }
    }
}
