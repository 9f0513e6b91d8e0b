//! Keyword search over markets: a weighted `tsvector` column with a GIN index on PostgreSQL, an external-content FTS5 table kept by triggers on SQLite.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// PostgreSQL: the name weighs most (A), then the description (B), then the category (C); the
/// English configuration stems (`elections` matches `election`). A generated column is computed
/// by every write, in its transaction, and for the rows already there.
const POSTGRES_UP: &[&str] = &[
    "ALTER TABLE markets ADD COLUMN search tsvector GENERATED ALWAYS AS (\
        setweight(to_tsvector('english', name), 'A') || \
        setweight(to_tsvector('english', description), 'B') || \
        setweight(to_tsvector('simple', replace(category, '-', ' ')), 'C')) STORED",
    "CREATE INDEX ix_markets_search ON markets USING GIN (search)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX ix_markets_search",
    "ALTER TABLE markets DROP COLUMN search",
];

/// SQLite: FTS5 over the markets table itself (`content=`: no second copy of the text), the
/// Porter stemmer over Unicode words, kept current by triggers in the writing transaction.
const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE markets_fts USING fts5(\
        name, description, category, content='markets', content_rowid='rowid', \
        tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER markets_fts_insert AFTER INSERT ON markets BEGIN \
        INSERT INTO markets_fts(rowid, name, description, category) \
        VALUES (new.rowid, new.name, new.description, replace(new.category, '-', ' ')); END",
    "CREATE TRIGGER markets_fts_delete AFTER DELETE ON markets BEGIN \
        INSERT INTO markets_fts(markets_fts, rowid, name, description, category) \
        VALUES ('delete', old.rowid, old.name, old.description, replace(old.category, '-', ' ')); END",
    "CREATE TRIGGER markets_fts_update AFTER UPDATE OF name, description, category ON markets BEGIN \
        INSERT INTO markets_fts(markets_fts, rowid, name, description, category) \
        VALUES ('delete', old.rowid, old.name, old.description, replace(old.category, '-', ' ')); \
        INSERT INTO markets_fts(rowid, name, description, category) \
        VALUES (new.rowid, new.name, new.description, replace(new.category, '-', ' ')); END",
    "INSERT INTO markets_fts(markets_fts) VALUES ('rebuild')",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER markets_fts_update",
    "DROP TRIGGER markets_fts_delete",
    "DROP TRIGGER markets_fts_insert",
    "DROP TABLE markets_fts",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, POSTGRES_UP, SQLITE_UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, POSTGRES_DOWN, SQLITE_DOWN).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

async fn run(manager: &SchemaManager<'_>, postgres: &[&str], sqlite: &[&str]) -> Result<(), DbErr> {
    let statements = match manager.get_database_backend() {
        DbBackend::Postgres => postgres,
        DbBackend::Sqlite => sqlite,
        other => {
            return Err(DbErr::Migration(format!(
                "market search has no migration for {other:?}"
            )));
        }
    };
    for statement in statements {
        manager
            .get_connection()
            .execute_unprepared(statement)
            .await?;
    }
    Ok(())
}
