//! The test harness: a fresh database per test (a SQLite file, or a PostgreSQL database created and
//! dropped here), the real application spawned on port 0, and repositories for contract suites.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! When it cannot be reached, PostgreSQL tests fail if `REQUIRE_SERVICES=1` (as in CI) and are
//! skipped with a loud message otherwise.

pub mod fault_proxy;
pub mod redis_server;
pub mod smtp_server;

use std::path::PathBuf;
use std::sync::Arc;

use adapter_persistence::{
    Database, PoolOptions, SeaIdempotencyStore, SeaMarketRepository, SeaOutbox,
    SeaPositionRepository, SeaUnitOfWork, SeaUserRepository,
};
use bootstrap::config::{AppEnv, Config};
use domain::ports::{
    IdempotencyStore, MarketRepository, Outbox, PositionRepository, UnitOfWork, UserRepository,
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

/// Where a test keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL URL tests administer databases through (`TEST_DATABASE_URL`).
#[must_use]
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// Stores one creator and a market per `(name, description, category)`, ending in a year, into a
/// migrated database; returns the markets' ids in order. For suites that search.
///
/// # Panics
/// When a draft is invalid or a write fails.
pub async fn insert_markets(
    pools: &Database,
    drafts: &[(&str, &str, &str)],
) -> Vec<domain::MarketId> {
    use domain::market::MarketDraft;
    use domain::{
        Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
        PasswordHash, Role, User, UserId,
    };
    let now = domain::ports::Clock::now(&adapter_memory::SystemClock);
    let creator = User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(&format!("creator-{}@example.com", Uuid::new_v4().simple()))
            .expect("an email"),
        name: DisplayName::parse("Creator").expect("a name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
        role: Role::User,
        balance: Amount::ZERO,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    SeaUserRepository::new(pools.clone())
        .insert(&creator)
        .await
        .expect("the creator");
    let markets = SeaMarketRepository::new(pools.clone());
    let mut ids = Vec::with_capacity(drafts.len());
    for (name, description, category) in drafts {
        let market = Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            MarketDraft {
                name: MarketName::parse(name).expect("a name"),
                description: MarketDescription::parse(description).expect("a description"),
                category: Category::parse(category).expect("a category"),
                end_date: now + chrono::Duration::days(365),
            },
            creator.id,
            now,
        )
        .expect("a market");
        markets.insert(&market).await.expect("stored");
        ids.push(market.id);
    }
    ids
}

/// Whether pgvector can be used on `pools` (it is not packaged for PostgreSQL 15 on Debian 12).
/// When it cannot, says so loudly, and fails instead when `REQUIRE_PGVECTOR=1`.
///
/// # Panics
/// When pgvector is required and missing, or installed but cannot be prepared.
pub async fn pgvector_usable(pools: &Database) -> bool {
    use adapter_persistence::{PgVectorIndex, PgVectorUnavailable};
    match PgVectorIndex::open(pools.clone(), 3, "probe").await {
        Ok(_) => true,
        Err(PgVectorUnavailable::NotInstalled) => {
            assert!(
                std::env::var("REQUIRE_PGVECTOR").map_or(true, |v| v != "1"),
                "pgvector is required (REQUIRE_PGVECTOR=1) but the server has no \"vector\" extension"
            );
            eprintln!(
                "\n!!! pgvector is not installed on this PostgreSQL server: its cases are not run \
                 here (the fallback cases are). Install it and set REQUIRE_PGVECTOR=1 to require it.\n"
            );
            false
        }
        Err(other) => panic!("pgvector is installed but could not be prepared: {other}"),
    }
}

fn services_required() -> bool {
    std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A database that exists for one test and is removed when dropped.
pub struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(PathBuf),
    Postgres {
        admin_url: String,
        name: String,
    },
    /// Someone else's database: leave it alone.
    Nothing,
}

impl TestDatabase {
    /// A new SQLite file in a folder of its own.
    ///
    /// # Panics
    /// When the folder cannot be created.
    #[must_use]
    pub fn sqlite() -> Self {
        let folder = std::env::temp_dir().join(format!("markets-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        Self {
            url: format!("sqlite://{}?mode=rwc", folder.join("test.db").display()),
            cleanup: Cleanup::Folder(folder),
        }
    }

    /// A new, empty PostgreSQL database; `None` (after a loud message) when PostgreSQL is not
    /// reachable and services are not required.
    ///
    /// # Panics
    /// When PostgreSQL is unreachable and `REQUIRE_SERVICES=1`, or refuses to create a database.
    pub async fn postgres() -> Option<Self> {
        let admin_url = admin_url();
        let admin = match sea_orm::Database::connect(&admin_url).await {
            Ok(connection) => connection,
            Err(error) => {
                assert!(
                    !services_required(),
                    "PostgreSQL is required (REQUIRE_SERVICES=1) but {admin_url} is unreachable: {error}"
                );
                eprintln!(
                    "\n!!! SKIPPED: a PostgreSQL test; {admin_url} is unreachable ({error}).\n\
                     !!! Start PostgreSQL or set TEST_DATABASE_URL; CI sets REQUIRE_SERVICES=1 and fails instead.\n"
                );
                return None;
            }
        };
        let name = format!("test_{}", Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("CREATE DATABASE");
        admin.close().await.ok();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Some(Self {
            url: format!("{base}/{name}"),
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.clone(),
                name,
            },
        })
    }

    /// A fresh database of `backend` (`Memory` has none: `None`).
    pub async fn of(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Memory => None,
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// An existing database that this harness must not drop (for instance one on a server the
    /// test started itself).
    #[must_use]
    pub fn existing(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            cleanup: Cleanup::Nothing,
        }
    }

    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes the database disappear under a running application (PostgreSQL only: the database
    /// is dropped with its connections), to test how failures look from outside.
    ///
    /// # Panics
    /// On SQLite, or when PostgreSQL refuses.
    pub async fn destroy(&self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            panic!("only a PostgreSQL test database can be destroyed");
        };
        let admin = sea_orm::Database::connect(admin_url)
            .await
            .expect("connect to PostgreSQL");
        admin
            .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .await
            .expect("DROP DATABASE");
        admin.close().await.ok();
    }

    /// A migrated connection pool to this database.
    ///
    /// # Panics
    /// When connecting or migrating fails.
    pub async fn migrated(&self) -> Database {
        let database = adapter_persistence::connect(&self.url, None, &PoolOptions::default())
            .await
            .expect("connect to the test database");
        adapter_persistence::migrate_up(&database)
            .await
            .expect("migrate the test database");
        database
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Nothing => {}
            Cleanup::Folder(folder) => {
                std::fs::remove_dir_all(folder).ok();
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; a thread with its own runtime can block.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    runtime.block_on(async {
                        let admin: DatabaseConnection =
                            sea_orm::Database::connect(&admin_url).await.ok()?;
                        admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await
                            .ok()?;
                        admin.close().await.ok()
                    })
                })
                .join();
                if !matches!(dropped, Ok(Some(()))) {
                    eprintln!("warning: could not drop the test database {}", self.url);
                }
            }
        }
    }
}

/// The repositories of one backend, for port contract suites.
pub struct Repositories {
    pub users: Arc<dyn UserRepository>,
    pub markets: Arc<dyn MarketRepository>,
    pub positions: Arc<dyn PositionRepository>,
    pub outbox: Arc<dyn Outbox>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub unit_of_work: Arc<dyn UnitOfWork>,
    pub relay_cursors: Arc<dyn domain::ports::RelayCursors>,
    pub jobs: Arc<dyn domain::ports::JobQueue>,
    pub sessions: Arc<dyn domain::ports::SessionRepository>,
    /// Keeps the database alive for the test.
    pub database: Option<TestDatabase>,
}

impl Repositories {
    /// Fresh, empty repositories; `None` when the backend's service is unavailable (see
    /// [`TestDatabase::postgres`]).
    pub async fn of(backend: Backend) -> Option<Self> {
        if backend == Backend::Memory {
            let store = adapter_memory::InMemoryStore::new();
            return Some(Self {
                users: store.users(),
                markets: store.markets(),
                positions: store.positions(),
                outbox: store.outbox(),
                idempotency: store.idempotency(),
                unit_of_work: store.unit_of_work(),
                relay_cursors: Arc::new(adapter_memory::InMemoryRelayCursors::new()),
                jobs: store.jobs(),
                sessions: store.sessions(),
                database: None,
            });
        }
        let database = TestDatabase::of(backend).await?;
        let pools = database.migrated().await;
        Some(Self {
            users: Arc::new(SeaUserRepository::new(pools.clone())),
            markets: Arc::new(SeaMarketRepository::new(pools.clone())),
            positions: Arc::new(SeaPositionRepository::new(pools.clone())),
            outbox: Arc::new(SeaOutbox::new(pools.clone())),
            idempotency: Arc::new(SeaIdempotencyStore::new(pools.clone())),
            relay_cursors: Arc::new(adapter_persistence::SeaRelayCursors::new(pools.clone())),
            jobs: Arc::new(adapter_persistence::SeaJobQueue::new(pools.clone())),
            sessions: Arc::new(adapter_persistence::SeaSessionRepository::new(
                pools.clone(),
            )),
            unit_of_work: Arc::new(SeaUnitOfWork::new(pools)),
            database: Some(database),
        })
    }
}

/// Configuration for a test instance: port 0, cheap password hashing, a fixed secret, an uploads
/// folder of its own.
#[must_use]
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config {
        env: AppEnv::Test,
        ..Config::default()
    };
    config.http.port = 0;
    config.http.workers = Some(2);
    config.database.url = SecretString::from(database_url.to_owned());
    config.database.max_connections = 5;
    config.auth.jwt_secret = Some(SecretString::from(
        "a-test-secret-that-is-at-least-32-bytes-long".to_owned(),
    ));
    config.auth.argon2_memory_kib = 8;
    config.auth.argon2_iterations = 1;
    // Suites send many requests from one address; the rate-limit suite turns limits on itself.
    config.rate_limit.enabled = false;
    // Every suite searches the same in-process index whatever the server has installed; the
    // pgvector suites choose it themselves.
    config.search.vector_index = bootstrap::config::VectorIndexKind::Memory;
    // Beside a test's SQLite file (removed with its folder), else a temporary folder of its own.
    config.uploads.dir = config
        .database
        .sqlite_path()
        .as_deref()
        .and_then(std::path::Path::parent)
        .filter(|folder| folder.starts_with(std::env::temp_dir()))
        .map_or_else(
            || std::env::temp_dir().join(format!("markets-uploads-{}", Uuid::new_v4())),
            |folder| folder.join("uploads"),
        );
    config
}

/// The real application, running on a free port, with its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub database: TestDatabase,
    /// The application's own pools: `statement_count()` counts its SQL statements.
    pub pools: Database,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// A header's value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    /// Spawns the application on `backend` (SQLite or PostgreSQL); `None` when PostgreSQL is
    /// unavailable and not required.
    ///
    /// # Panics
    /// When the application does not start.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        let database = TestDatabase::of(backend).await?;
        Some(Self::spawn_with(backend, database, test_config).await)
    }

    /// Spawns with a configuration derived from the database URL by `configure`.
    ///
    /// # Panics
    /// When the application does not start.
    pub async fn spawn_with(
        backend: Backend,
        database: TestDatabase,
        configure: impl FnOnce(&str) -> Config,
    ) -> Self {
        let config = configure(database.url());
        let application = bootstrap::Application::build(&config, true)
            .await
            .expect("the application starts");
        let address = format!("http://127.0.0.1:{}", application.port());
        let pools = application.database().clone();
        tokio::spawn(application.run_until_stopped());
        Self {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            backend,
            database,
            pools,
        }
    }

    /// Waits (up to 10 s) until no job is waiting or running, and then until the application's
    /// pools have run no statement for 300 ms, so that background work (a welcome email after a
    /// registration, the search indexer reading a market after its event) does not run
    /// statements while a test counts them.
    ///
    /// # Panics
    /// When jobs are still pending after 10 s.
    pub async fn wait_for_idle_jobs(&self) {
        self.wait_for_no_pending_jobs().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut last = self.pools.statement_count();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let now = self.pools.statement_count();
            if now == last || std::time::Instant::now() > deadline {
                return;
            }
            last = now;
        }
    }

    async fn wait_for_no_pending_jobs(&self) {
        use domain::ports::JobQueue as _;
        let queue = adapter_persistence::SeaJobQueue::new(self.pools.clone());
        let one = domain::PageRequest::new(1, 0).expect("a page");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut pending = 0;
            for state in [domain::JobState::Available, domain::JobState::Running] {
                pending += queue.list(Some(state), one).await.expect("jobs").total;
            }
            if pending == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{pending} jobs still pending after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sends a request and reads the whole reply.
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the request is sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn post_json_as(&self, token: &str, path: &str, body: &Value) -> Reply {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// Registers a user and returns their id.
    ///
    /// # Panics
    /// When registration fails.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let reply = self
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": email, "password": password, "name": "Test User"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["data"]["id"].as_str().expect("an id").to_owned()
    }

    /// Signs in and returns the access token.
    ///
    /// # Panics
    /// When sign-in fails.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let reply = self
            .post_json(
                "/api/v1/auth/login",
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["data"]["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// Registers a fresh user and signs in; returns `(user id, token)`.
    pub async fn signed_in_user(&self) -> (String, String) {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let id = self.register(&email, "correct horse battery").await;
        let token = self.login(&email, "correct horse battery").await;
        (id, token)
    }

    /// Registers a user, gives them `role` directly in the database (the first admin has to come
    /// from somewhere: `PATCH /api/v1/users/{id}` needs one), signs in; returns `(user id, token)`.
    ///
    /// # Panics
    /// When any step fails.
    pub async fn signed_in_with_role(&self, role: domain::Role) -> (String, String) {
        let email = format!("{}-{}@example.com", role.as_str(), Uuid::new_v4().simple());
        let id = self.register(&email, "correct horse battery").await;
        let connection = sea_orm::Database::connect(self.database.url())
            .await
            .expect("connect to the test database");
        let statement = sea_orm::Statement::from_sql_and_values(
            connection.get_database_backend(),
            match connection.get_database_backend() {
                sea_orm::DbBackend::Postgres => "UPDATE users SET role = $1 WHERE email = $2",
                _ => "UPDATE users SET role = ? WHERE email = ?",
            },
            [role.as_str().into(), email.clone().into()],
        );
        let result = connection
            .execute_raw(statement)
            .await
            .expect("set the role");
        assert_eq!(result.rows_affected(), 1);
        connection.close().await.ok();
        let token = self.login(&email, "correct horse battery").await;
        (id, token)
    }

    /// Creates a market as `token` and returns its JSON.
    ///
    /// # Panics
    /// When creation fails.
    pub async fn create_market(&self, token: &str, name: &str, category: &str) -> Value {
        let reply = self
            .post_json_as(
                token,
                "/api/v1/markets",
                &json!({
                    "name": name,
                    "description": "A test market",
                    "category": category,
                    "end_date": "2030-01-01T00:00:00Z",
                }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["data"].clone()
    }
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn(TestApp)` of the
/// enclosing module: `sqlite::<name>` and `postgres::<name>`.
#[macro_export]
macro_rules! api_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(app) = $crate::TestApp::spawn($crate::Backend::Sqlite).await {
                        super::$test(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(app) = $crate::TestApp::spawn($crate::Backend::Postgres).await {
                        super::$test(app).await;
                    }
                }
            )*
        }
    };
}

/// Generates one `#[tokio::test]` per backend (memory, SQLite, PostgreSQL) for each listed
/// `async fn(Repositories)` of the enclosing module.
#[macro_export]
macro_rules! contract_tests {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(repositories) = $crate::Repositories::of($crate::Backend::Memory).await {
                        super::$test(repositories).await;
                    }
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(repositories) = $crate::Repositories::of($crate::Backend::Sqlite).await {
                        super::$test(repositories).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(repositories) = $crate::Repositories::of($crate::Backend::Postgres).await {
                        super::$test(repositories).await;
                    }
                }
            )*
        }
    };
}

/// Like [`contract_tests!`], on a multi-threaded runtime, so that concurrent transactions really
/// run in parallel: `parallel::memory::<name>`, `parallel::sqlite::<name>`,
/// `parallel::postgres::<name>`.
#[macro_export]
macro_rules! parallel_contract_tests {
    ($($test:ident),* $(,)?) => {
        mod parallel {
            mod memory {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $test() {
                        if let Some(repositories) = $crate::Repositories::of($crate::Backend::Memory).await {
                            super::super::$test(repositories).await;
                        }
                    }
                )*
            }
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $test() {
                        if let Some(repositories) = $crate::Repositories::of($crate::Backend::Sqlite).await {
                            super::super::$test(repositories).await;
                        }
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $test() {
                        if let Some(repositories) = $crate::Repositories::of($crate::Backend::Postgres).await {
                            super::super::$test(repositories).await;
                        }
                    }
                )*
            }
        }
    };
}

// Redis: a key prefix of its own for each test.

const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// How long the harness waits for Redis to connect or answer.
const REDIS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// The Redis that tests use: `TEST_REDIS_URL`, `redis://127.0.0.1:6379` by default.
#[must_use]
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS.to_owned())
}

async fn redis_connection(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|error| error.to_string())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_PATIENCE))
        .set_response_timeout(Some(REDIS_PATIENCE));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|error| error.to_string())
}

/// One test's corner of Redis: the key prefix `test:<uuid>:`, whose keys are deleted (`SCAN` +
/// `DEL`) when this is dropped.
pub struct TestRedis {
    url: String,
    prefix: String,
}

impl TestRedis {
    /// A fresh prefix on a Redis that answers; `None` (after a loud message) when Redis is not
    /// reachable and services are not required.
    ///
    /// # Panics
    /// When Redis is unreachable and `REQUIRE_SERVICES=1`.
    pub async fn start() -> Option<Self> {
        let url = redis_url();
        let answer = async {
            let mut connection = redis_connection(&url).await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map_err(|error| error.to_string())
        };
        if let Err(error) = answer.await {
            assert!(
                !services_required(),
                "Redis is required (REQUIRE_SERVICES=1) but {url} is unreachable: {error}"
            );
            eprintln!(
                "\n!!! SKIPPED: a Redis test; {url} is unreachable ({error}).\n\
                 !!! Start Redis or set TEST_REDIS_URL; CI sets REQUIRE_SERVICES=1 and fails instead.\n"
            );
            return None;
        }
        Some(Self {
            url,
            prefix: format!("test:{}:", Uuid::new_v4().simple()),
        })
    }

    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A cache configuration under this prefix, with timeouts long enough for a busy test machine
    /// (the contract suite checks what the cache says, not how fast).
    #[must_use]
    pub fn config(&self) -> adapter_cache::RedisCacheConfig {
        adapter_cache::RedisCacheConfig {
            key_prefix: self.prefix.clone(),
            pool_size: 8,
            connect_timeout: REDIS_PATIENCE,
            command_timeout: REDIS_PATIENCE,
            wait_timeout: REDIS_PATIENCE,
        }
    }

    /// A [`adapter_cache::RedisCache`] under this prefix.
    ///
    /// # Panics
    /// When `TEST_REDIS_URL` is malformed.
    #[must_use]
    pub fn cache(&self) -> adapter_cache::RedisCache {
        adapter_cache::RedisCache::connect(&self.url, self.config()).expect("a valid Redis URL")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}*", self.prefix));
        // Drop runs inside the test's runtime; a thread with its own runtime can block.
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let mut connection = redis_connection(&url).await?;
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut connection)
                        .await
                        .map_err(|error| error.to_string())?;
                    if !keys.is_empty() {
                        redis::cmd("DEL")
                            .arg(&keys)
                            .query_async::<i64>(&mut connection)
                            .await
                            .map_err(|error| error.to_string())?;
                    }
                    if next == 0 {
                        return Ok::<(), String>(());
                    }
                    cursor = next;
                }
            })
        })
        .join();
        match cleaned {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!(
                    "warning: could not delete the Redis keys {}*: {error}",
                    self.prefix
                );
            }
            Err(_) => eprintln!("warning: could not delete the Redis keys {}*", self.prefix),
        }
    }
}

/// A [`adapter_cache::RedisCache`] under a fresh prefix, with the [`TestRedis`] that deletes its
/// keys when dropped; `None` when Redis is unavailable (see [`TestRedis::start`]).
pub async fn test_cache() -> Option<(TestRedis, adapter_cache::RedisCache)> {
    let redis = TestRedis::start().await?;
    let cache = redis.cache();
    Some((redis, cache))
}

/// Generates one test per adapter for each listed `async fn(Arc<dyn Cache>)`:
/// `in_process::<name>`, `redis::<name>` and `tiered::<name>` (the last two skipped loudly when
/// Redis is unavailable; the tiered cache is subscribed, so its in-process tier is in use).
#[macro_export]
macro_rules! cache_tests {
    ($($test:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let cache = adapter_cache::InProcessCache::new(64 * 1024 * 1024);
                    super::$test(std::sync::Arc::new(cache)).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    // `_redis` deletes the test's keys when the test ends.
                    if let Some((_redis, cache)) = $crate::test_cache().await {
                        super::$test(std::sync::Arc::new(cache)).await;
                    }
                }
            )*
        }
        mod tiered {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some((_redis, cache)) = $crate::subscribed_tiered_cache().await {
                        super::$test(std::sync::Arc::new(cache)).await;
                    }
                }
            )*
        }
    };
}

/// A [`adapter_cache::TieredCache`] under a fresh prefix, once its subscriber is subscribed, with the
/// [`TestRedis`] that deletes its keys when dropped; `None` when Redis is unavailable.
///
/// # Panics
/// When the cache does not subscribe within 3 s.
pub async fn subscribed_tiered_cache() -> Option<(TestRedis, adapter_cache::TieredCache)> {
    let redis = TestRedis::start().await?;
    let cache = adapter_cache::TieredCache::connect(
        redis.url(),
        redis.config(),
        adapter_cache::TieredCacheConfig::default(),
    )
    .expect("a valid configuration");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !cache.is_subscribed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the tiered cache subscribes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Some((redis, cache))
}
