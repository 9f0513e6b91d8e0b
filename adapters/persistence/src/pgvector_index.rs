//! `PgVectorIndex`: the `VectorIndex` port over PostgreSQL's pgvector extension (an HNSW index on cosine distance), for databases where the extension can be created.

use std::fmt::Write as _;

use async_trait::async_trait;
use domain::MarketId;
use domain::ports::{VectorIndex, VectorIndexError};
use domain::search::{Embedding, ScoredMarket};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TransactionTrait, Value};
use uuid::Uuid;

use crate::database::Database;

/// Why pgvector cannot be used: the service then keeps an in-process index (`search.vector_index
/// = "auto"`) or refuses to start (`"pgvector"`).
#[derive(Debug, thiserror::Error)]
pub enum PgVectorUnavailable {
    /// The database is SQLite.
    #[error("the database is not PostgreSQL")]
    NotPostgres,
    /// The server has no `vector` extension installed (`pg_available_extensions`).
    #[error("the PostgreSQL server has no \"vector\" extension installed")]
    NotInstalled,
    /// pgvector's HNSW index takes at most 2,000 dimensions.
    #[error("pgvector indexes at most {max} dimensions; the embedder has {dimensions}")]
    TooManyDimensions { dimensions: usize, max: usize },
    /// Creating the extension, the table or the index failed (most often: the role may not create
    /// the extension; a superuser can run `CREATE EXTENSION vector` once).
    #[error("preparing pgvector failed: {0}")]
    Setup(DbErr),
}

/// Market embeddings in a table of the markets' database, searched through an HNSW index
/// (approximate: recall is high but not exact; `hnsw.ef_search` is raised to the number of
/// candidates asked for). Survives restarts; every instance shares it.
///
/// The table, `market_vectors_<dimensions>`, is created on first use (not by a migration: the
/// extension is optional and the width follows the configured embedder). Rows of another embedder
/// with the same width are deleted when the index is opened: vectors of two models are not
/// comparable.
#[derive(Debug, Clone)]
pub struct PgVectorIndex {
    database: Database,
    dimensions: usize,
    embedder: String,
    table: String,
}

/// The widest vector pgvector's HNSW index takes.
const PGVECTOR_MAX_DIMENSIONS: usize = 2_000;

impl PgVectorIndex {
    /// Creates the extension, the table and its index when they are missing (under an advisory
    /// lock, so that instances starting together do not race), and forgets vectors of another
    /// embedder.
    ///
    /// # Errors
    /// [`PgVectorUnavailable`] saying why pgvector cannot be used.
    pub async fn open(
        database: Database,
        dimensions: usize,
        embedder: &str,
    ) -> Result<Self, PgVectorUnavailable> {
        if database.backend() != DbBackend::Postgres {
            return Err(PgVectorUnavailable::NotPostgres);
        }
        if dimensions > PGVECTOR_MAX_DIMENSIONS {
            return Err(PgVectorUnavailable::TooManyDimensions {
                dimensions,
                max: PGVECTOR_MAX_DIMENSIONS,
            });
        }
        let writer = database.writer();
        let installed = writer
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT 1 AS installed FROM pg_available_extensions WHERE name = 'vector'",
            ))
            .await
            .map_err(PgVectorUnavailable::Setup)?;
        if installed.is_none() {
            return Err(PgVectorUnavailable::NotInstalled);
        }
        let table = format!("market_vectors_{dimensions}");
        let transaction = writer.begin().await.map_err(PgVectorUnavailable::Setup)?;
        transaction
            .execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock(hashtext('market_vectors')); \
                 CREATE EXTENSION IF NOT EXISTS vector; \
                 CREATE TABLE IF NOT EXISTS {table} ( \
                     market_id uuid PRIMARY KEY REFERENCES markets (id) ON DELETE CASCADE, \
                     embedder text NOT NULL, \
                     embedding vector({dimensions}) NOT NULL); \
                 CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} \
                     USING hnsw (embedding vector_cosine_ops);"
            ))
            .await
            .map_err(PgVectorUnavailable::Setup)?;
        transaction
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("DELETE FROM {table} WHERE embedder <> $1"),
                [embedder.into()],
            ))
            .await
            .map_err(PgVectorUnavailable::Setup)?;
        transaction
            .commit()
            .await
            .map_err(PgVectorUnavailable::Setup)?;
        Ok(Self {
            database,
            dimensions,
            embedder: embedder.to_owned(),
            table,
        })
    }

    fn check(&self, embedding: &Embedding) -> Result<(), VectorIndexError> {
        VectorIndexError::unless_dimensions(self.dimensions, embedding)
    }
}

/// pgvector's text form, `[0.1,-0.2,...]` (the shortest decimal that reads back as the same f32).
fn literal(embedding: &Embedding) -> String {
    let mut text = String::with_capacity(embedding.dimensions() * 12 + 2);
    text.push('[');
    for (n, value) in embedding.values().iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        let _ = write!(text, "{value}");
    }
    text.push(']');
    text
}

/// One statement for a batch: `$1` is the embedder, then a market id and a vector literal per
/// entry. A market deleted meanwhile is skipped (the join), not a failure of the batch.
fn upsert_statement(table: &str, entries: usize) -> String {
    let mut sql = format!(
        "INSERT INTO {table} (market_id, embedder, embedding) \
         SELECT v.market_id, $1, v.embedding::vector FROM (VALUES "
    );
    for n in 0..entries {
        if n > 0 {
            sql.push(',');
        }
        let _ = write!(sql, "(${}::uuid, ${}::text)", 2 * n + 2, 2 * n + 3);
    }
    sql.push_str(
        ") AS v (market_id, embedding) JOIN markets m ON m.id = v.market_id \
         ON CONFLICT (market_id) DO UPDATE SET embedder = excluded.embedder, \
         embedding = excluded.embedding",
    );
    sql
}

fn unavailable(error: DbErr) -> VectorIndexError {
    VectorIndexError::Unavailable(error.to_string())
}

#[async_trait]
impl VectorIndex for PgVectorIndex {
    fn kind(&self) -> &'static str {
        "pgvector hnsw"
    }

    fn persistent(&self) -> bool {
        true
    }

    async fn upsert(
        &self,
        market: MarketId,
        embedding: &Embedding,
    ) -> Result<(), VectorIndexError> {
        self.upsert_many(&[(market, embedding.clone())]).await
    }

    async fn upsert_many(&self, entries: &[(MarketId, Embedding)]) -> Result<(), VectorIndexError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut values: Vec<Value> = Vec::with_capacity(entries.len() * 2 + 1);
        values.push(self.embedder.clone().into());
        for (market, embedding) in entries {
            self.check(embedding)?;
            values.push(market.as_uuid().into());
            values.push(literal(embedding).into());
        }
        let statement = upsert_statement(&self.table, entries.len());
        self.database
            .writer()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                statement,
                values,
            ))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove(&self, market: MarketId) -> Result<(), VectorIndexError> {
        self.database
            .writer()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("DELETE FROM {} WHERE market_id = $1", self.table),
                [market.as_uuid().into()],
            ))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn nearest(
        &self,
        query: &Embedding,
        limit: usize,
    ) -> Result<Vec<ScoredMarket>, VectorIndexError> {
        self.check(query)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The HNSW scan returns at most `ef_search` rows (40 by default): raise it to the limit,
        // for this transaction only.
        let transaction = self.database.reader().begin().await.map_err(unavailable)?;
        transaction
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT set_config('hnsw.ef_search', $1, true)",
                [limit.clamp(40, 1_000).to_string().into()],
            ))
            .await
            .map_err(unavailable)?;
        let rows = transaction
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "SELECT market_id, (1 - (embedding <=> $1::vector))::float8 AS similarity \
                     FROM {} ORDER BY embedding <=> $1::vector LIMIT $2",
                    self.table
                ),
                [literal(query).into(), limit.into()],
            ))
            .await
            .map_err(unavailable)?;
        transaction.commit().await.map_err(unavailable)?;
        let mut found = rows
            .into_iter()
            .map(|row| {
                let id: Uuid = row.try_get("", "market_id").map_err(unavailable)?;
                let similarity: f64 = row.try_get("", "similarity").map_err(unavailable)?;
                #[allow(clippy::cast_possible_truncation)] // a similarity in -1..=1
                let score = similarity as f32;
                Ok(ScoredMarket {
                    market_id: MarketId::from_uuid(id),
                    score,
                })
            })
            .collect::<Result<Vec<_>, VectorIndexError>>()?;
        // Most similar first, ties by id (the index orders by distance only).
        found.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.market_id.cmp(&b.market_id))
        });
        Ok(found)
    }

    async fn count(&self) -> Result<usize, VectorIndexError> {
        let row = self
            .database
            .reader()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT count(*) AS total FROM {}", self.table),
            ))
            .await
            .map_err(unavailable)?;
        let total: i64 = match row {
            Some(row) => row.try_get("", "total").map_err(unavailable)?,
            None => 0,
        };
        Ok(usize::try_from(total).unwrap_or_default())
    }
}
