//! Connecting: connection pools for the primary database and an optional read replica.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, DatabaseConnection, DbBackend, DbErr};

/// Pool sizes and timeouts, the same for the primary and the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections open at once (per pool).
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// How long opening a new connection may take.
    pub connect_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long (lets a database fail over or rebalance).
    pub max_lifetime: Option<Duration>,
    /// SQLite only: how long a statement waits for another connection's write lock.
    pub sqlite_busy_timeout: Duration,
    /// PostgreSQL only: statements running longer are cancelled by the server
    /// (`statement_timeout`); `None` for no limit.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            sqlite_busy_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(5)),
        }
    }
}

/// Why no pool could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names neither PostgreSQL nor SQLite. Only the scheme is kept: URLs hold passwords.
    #[error(
        "unsupported database URL scheme '{0}': expected postgres://, postgresql:// or sqlite:"
    )]
    UnsupportedScheme(String),
    /// A `sqlite:` URL that SQLite cannot open.
    #[error("invalid SQLite URL")]
    InvalidSqliteUrl(#[source] sea_orm::sqlx::Error),
    /// The folder of the SQLite file does not exist and cannot be created.
    #[error("cannot create the folder {path} for the SQLite database")]
    CreateFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The primary database did not accept a connection.
    #[error("cannot connect to the primary database")]
    Primary(#[source] DbErr),
    /// The read replica did not accept a connection.
    #[error("cannot connect to the read replica")]
    Replica(#[source] DbErr),
}

/// The pools the repositories use: writes (and reads that must see them) go to `writer`; lists
/// and reads by id go to `reader`, a read replica when one is configured and the writer otherwise.
///
/// Every statement run on either pool is counted ([`Database::statement_count`]), for query-count
/// tests and metrics.
///
/// Cheap to clone: both are handles on shared pools, and clones share the statement count.
#[derive(Debug, Clone)]
pub struct Database {
    writer: DatabaseConnection,
    reader: DatabaseConnection,
    has_replica: bool,
    statements: Arc<Statements>,
}

/// What the metric callback of both pools feeds: a count, and an optional observer.
#[derive(Default)]
struct Statements {
    count: AtomicU64,
    observer: OnceLock<StatementObserver>,
}

impl std::fmt::Debug for Statements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statements")
            .field("count", &self.count)
            .field("observed", &self.observer.get().is_some())
            .finish()
    }
}

/// Told about every statement: how long it took, whether it failed, and its SQL (with
/// placeholders, never the values).
pub type StatementObserver = Arc<dyn Fn(Duration, bool, &str) + Send + Sync>;

impl Database {
    /// One pool for everything.
    ///
    /// Installs the statement counter as the connection's metric callback (replacing any other):
    /// pass a connection that has not been cloned yet, or statements run through the older clones
    /// are not counted.
    #[must_use]
    pub fn new(mut connection: DatabaseConnection) -> Self {
        let statements = Arc::default();
        count_statements(&mut connection, &statements);
        Self {
            reader: connection.clone(),
            writer: connection,
            has_replica: false,
            statements,
        }
    }

    /// A primary and a read replica, counted together (see [`Database::new`]).
    #[must_use]
    pub fn with_replica(mut writer: DatabaseConnection, mut reader: DatabaseConnection) -> Self {
        let statements = Arc::default();
        count_statements(&mut writer, &statements);
        count_statements(&mut reader, &statements);
        Self {
            writer,
            reader,
            has_replica: true,
            statements,
        }
    }

    /// How many statements ran on this database's pools (writer and reader, inside transactions
    /// or not, failed ones included) since it was built. `BEGIN`, `COMMIT`, `ROLLBACK`,
    /// savepoints and raw SQL run with `execute_unprepared` (migrations use it) are not counted:
    /// SeaORM runs them without its metric callback.
    #[must_use]
    pub fn statement_count(&self) -> u64 {
        self.statements.count.load(Ordering::Relaxed)
    }

    /// Tells `observer` about every later statement on either pool (for metrics and the
    /// slow-statement log). Only the first observer set is kept; returns whether this one was.
    pub fn observe_statements(&self, observer: StatementObserver) -> bool {
        self.statements.observer.set(observer).is_ok()
    }

    /// The primary: for writes, migrations and transactions.
    #[must_use]
    pub fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// The replica if there is one, else the primary: for reads that may lag behind writes.
    #[must_use]
    pub fn reader(&self) -> &DatabaseConnection {
        &self.reader
    }

    /// Whether reads go to a separate replica.
    #[must_use]
    pub const fn has_replica(&self) -> bool {
        self.has_replica
    }

    /// PostgreSQL or SQLite.
    #[must_use]
    pub fn backend(&self) -> DbBackend {
        self.writer.get_database_backend()
    }

    /// Closes both pools, waiting for connections in use to be returned.
    ///
    /// # Errors
    /// [`DbErr`] when a pool fails to close.
    pub async fn close(&self) -> Result<(), DbErr> {
        self.writer.close_by_ref().await?;
        if self.has_replica {
            self.reader.close_by_ref().await?;
        }
        Ok(())
    }
}

/// Counts every statement `connection` runs into `statements`, and tells its observer.
fn count_statements(connection: &mut DatabaseConnection, statements: &Arc<Statements>) {
    let statements = Arc::clone(statements);
    connection.set_metric_callback(move |info| {
        statements.count.fetch_add(1, Ordering::Relaxed);
        if let Some(observer) = statements.observer.get() {
            observer(info.elapsed, info.failed, &info.statement.sql);
        }
    });
}

/// Opens the pools for `url` (`postgres://…` or `sqlite:…`) and, when given, a read replica at
/// `replica_url`.
///
/// A SQLite file and its folder are created when missing; every SQLite connection runs in WAL
/// mode with `foreign_keys=ON`, `synchronous=NORMAL` and the configured `busy_timeout`. Every
/// statement on either pool is counted ([`Database::statement_count`]).
///
/// # Errors
/// [`ConnectError`] when a URL is not supported or a database cannot be reached.
pub async fn connect(
    url: &str,
    replica_url: Option<&str>,
    pool: &PoolOptions,
) -> Result<Database, ConnectError> {
    let writer = connect_one(url, pool, ConnectError::Primary).await?;
    match replica_url {
        None => Ok(Database::new(writer)),
        Some(replica_url) => {
            let reader = connect_one(replica_url, pool, ConnectError::Replica).await?;
            Ok(Database::with_replica(writer, reader))
        }
    }
}

async fn connect_one(
    url: &str,
    pool: &PoolOptions,
    unreachable: fn(DbErr) -> ConnectError,
) -> Result<DatabaseConnection, ConnectError> {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(pool.max_connections)
        .min_connections(pool.min_connections)
        .acquire_timeout(pool.acquire_timeout)
        .connect_timeout(pool.connect_timeout)
        .idle_timeout(pool.idle_timeout)
        .max_lifetime(pool.max_lifetime)
        // sqlx pings a connection on every checkout by default: one more round trip per request
        // (performance.md, finding 11). Only a connection idle for a while is pinged; one that
        // broke while busy fails its next statement, which is reported like any other outage.
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        // Statements are traced by SeaORM's spans; sqlx would log each one at INFO.
        .sqlx_logging(false);
    match scheme {
        "postgres" | "postgresql" => {
            if let Some(timeout) = pool.statement_timeout {
                let milliseconds = timeout.as_millis().to_string();
                options.map_sqlx_postgres_opts(move |postgres| {
                    postgres.options([("statement_timeout", milliseconds.as_str())])
                });
            }
        }
        "sqlite" => configure_sqlite(url, pool, &mut options)?,
        other => {
            return Err(ConnectError::UnsupportedScheme(
                other.chars().take(20).collect(),
            ));
        }
    }
    sea_orm::Database::connect(options)
        .await
        .map_err(unreachable)
}

/// The SQLite settings of every connection, and the file's folder.
fn configure_sqlite(
    url: &str,
    pool: &PoolOptions,
    options: &mut ConnectOptions,
) -> Result<(), ConnectError> {
    let parsed = SqliteConnectOptions::from_str(url).map_err(ConnectError::InvalidSqliteUrl)?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if in_memory {
        // The database lives as long as one connection does: never let the pool close them all.
        options
            .min_connections(pool.min_connections.max(1))
            .idle_timeout(None)
            .max_lifetime(None);
    } else if let Some(folder) = parsed.get_filename().parent()
        && !folder.as_os_str().is_empty()
    {
        std::fs::create_dir_all(folder).map_err(|source| ConnectError::CreateFolder {
            path: folder.to_path_buf(),
            source,
        })?;
    }
    let busy_timeout = pool.sqlite_busy_timeout;
    options.map_sqlx_sqlite_opts(move |sqlite| {
        sqlite
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            .optimize_on_close(true, 400)
    });
    Ok(())
}

/// Begins a transaction that will write: `BEGIN IMMEDIATE` on SQLite, which takes the database's
/// write lock before the first read (a deferred transaction that read first could fail with
/// `SQLITE_BUSY_SNAPSHOT` when it comes to write, which no busy timeout retries), a plain `BEGIN`
/// elsewhere.
pub(crate) async fn begin_writing(
    connection: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::TransactionTrait as _;
    match connection.get_database_backend() {
        DbBackend::Sqlite => {
            connection
                .begin_with_options(sea_orm::TransactionOptions {
                    sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                    ..sea_orm::TransactionOptions::default()
                })
                .await
        }
        _ => connection.begin().await,
    }
}
