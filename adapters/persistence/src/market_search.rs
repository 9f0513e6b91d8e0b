//! `SeaKeywordSearch`: the `KeywordSearch` port over PostgreSQL full-text search (a weighted `tsvector` with a GIN index) and SQLite FTS5.

use async_trait::async_trait;
use domain::ports::{KeywordSearch, RepositoryError};
use domain::search::{ScoredMarket, SearchQuery};
use domain::{MarketId, MarketStatus};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::database::Database;
use crate::error::unavailable;

/// Keyword search in the database the markets live in. Searches read the replica when one is
/// configured (a market found a moment late is acceptable; the index itself is never behind its
/// database).
#[derive(Debug, Clone)]
pub struct SeaKeywordSearch {
    database: Database,
}

impl SeaKeywordSearch {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

/// PostgreSQL: any of the words (`|`), stemmed by the English configuration; `ts_rank` weighs
/// the name over the description over the category. The words are letters and digits only
/// ([`SearchQuery::words`]), so they cannot break the `to_tsquery` syntax.
const POSTGRES: &str = "SELECT id, ts_rank(search, query)::float8 AS score \
    FROM markets, to_tsquery('english', $1) AS query \
    WHERE search @@ query AND ($2::text IS NULL OR status = $2) \
    ORDER BY score DESC, id LIMIT $3";

/// SQLite: any of the words, each quoted as an FTS5 string (so no word is read as an operator),
/// ranked by BM25 with the name weighing most; `bm25` is lower for better matches.
const SQLITE: &str = "SELECT m.id AS id, -bm25(markets_fts, 10.0, 3.0, 1.0) AS score \
    FROM markets_fts JOIN markets m ON m.rowid = markets_fts.rowid \
    WHERE markets_fts MATCH ?1 AND (?2 IS NULL OR m.status = ?2) \
    ORDER BY score DESC, m.id LIMIT ?3";

#[async_trait]
impl KeywordSearch for SeaKeywordSearch {
    async fn search(
        &self,
        query: &SearchQuery,
        status: Option<MarketStatus>,
        limit: u64,
    ) -> Result<Vec<ScoredMarket>, RepositoryError> {
        let connection = self.database.reader();
        let backend = connection.get_database_backend();
        let (sql, expression) = match backend {
            DbBackend::Postgres => (POSTGRES, query.words().join(" | ")),
            _ => (
                SQLITE,
                query
                    .words()
                    .iter()
                    .map(|word| format!("\"{word}\""))
                    .collect::<Vec<_>>()
                    .join(" OR "),
            ),
        };
        let status: Value = status.map(|status| status.as_str().to_owned()).into();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = connection
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [expression.into(), status, limit.into()],
            ))
            .await
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|row| {
                let id: Uuid = row.try_get("", "id").map_err(unavailable)?;
                let score: f64 = row.try_get("", "score").map_err(unavailable)?;
                #[allow(clippy::cast_possible_truncation)] // a relevance score: f32 is plenty
                let score = score as f32;
                Ok(ScoredMarket {
                    market_id: MarketId::from_uuid(id),
                    score,
                })
            })
            .collect()
    }

    async fn rebuild(&self) -> Result<u64, RepositoryError> {
        let connection = self.database.writer();
        let backend = connection.get_database_backend();
        if backend == DbBackend::Sqlite {
            connection
                .execute_unprepared("INSERT INTO markets_fts(markets_fts) VALUES ('rebuild')")
                .await
                .map_err(unavailable)?;
        }
        // PostgreSQL's column is generated: it is never behind. Count what is searchable.
        let count = match backend {
            DbBackend::Postgres => "SELECT count(*) AS total FROM markets WHERE search IS NOT NULL",
            _ => "SELECT count(*) AS total FROM markets_fts",
        };
        let row = connection
            .query_one_raw(Statement::from_string(backend, count))
            .await
            .map_err(unavailable)?;
        let total: i64 = match row {
            Some(row) => row.try_get("", "total").map_err(unavailable)?,
            None => 0,
        };
        Ok(u64::try_from(total).unwrap_or_default())
    }
}
