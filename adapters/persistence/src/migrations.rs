//! Applying the schema migrations of the `migration` crate and reporting which are applied.

use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Func, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};

use crate::database::Database;

/// Which migrations the database has and which it still lacks, by name, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub applied: Vec<String>,
    pub pending: Vec<String>,
}

impl MigrationStatus {
    /// Whether every migration is applied.
    #[must_use]
    pub fn is_up_to_date(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Migrating failed; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("database migration failed")]
pub struct MigrateError(#[source] DbErr);

/// A number naming the PostgreSQL advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x006d_6967_7261_7465; // "migrate" in ASCII

/// Applies every pending migration on the primary, all in one transaction.
///
/// The transaction first takes the database's write lock (an advisory lock on PostgreSQL,
/// `BEGIN IMMEDIATE` on SQLite), so that instances or processes starting together migrate one
/// after the other: the later ones wait, then find nothing to do.
///
/// # Errors
/// [`MigrateError`] when a migration fails or the database cannot be reached.
pub async fn migrate_up(database: &Database) -> Result<(), MigrateError> {
    let transaction = crate::database::begin_writing(database.writer())
        .await
        .map_err(MigrateError)?;
    if transaction.get_database_backend() == DbBackend::Postgres {
        let lock = Query::select()
            .expr(Func::cust("pg_advisory_xact_lock").arg(MIGRATION_LOCK))
            .to_owned();
        transaction.query_one(&lock).await.map_err(MigrateError)?;
    }
    Migrator::up(&transaction, None)
        .await
        .map_err(MigrateError)?;
    transaction.commit().await.map_err(MigrateError)
}

/// The applied and pending migrations, read from the primary without changing anything.
///
/// # Errors
/// [`MigrateError`] when the database cannot be read or holds a migration this build does not
/// know (it was migrated by a newer version).
pub async fn migration_status(database: &Database) -> Result<MigrationStatus, MigrateError> {
    let migrations = Migrator::get_migration_with_status_read_only(database.writer())
        .await
        .map_err(MigrateError)?;
    let mut status = MigrationStatus {
        applied: Vec::new(),
        pending: Vec::new(),
    };
    for migration in migrations {
        let name = migration.name().to_owned();
        match migration.status() {
            migration::MigrationStatus::Applied => status.applied.push(name),
            migration::MigrationStatus::Pending => status.pending.push(name),
        }
    }
    Ok(status)
}
