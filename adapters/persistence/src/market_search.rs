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

/// Matches ranked per search, at most, for each of the two match sets (every word; any word): the
/// bound on a search's cost. Ranking is per matching row (there is no top-k full-text index), and
/// a word found in most markets would otherwise rank them all: 100,000 markets took ~90 ms of
/// PostgreSQL per search (docs/performance.md, finding 14); each matched row costs a heap read
/// and a recheck (~5 µs), so 500 per set keeps a search near 5 ms of PostgreSQL at any size, and
/// is still six times the 80 candidates a full page asks for. Markets having every word come
/// first, so a broad word only fills what the precise matches leave.
pub const MATCHES_RANKED: i64 = 500;

/// PostgreSQL: markets with every word (`&`), then markets with any word (`|`), each set capped
/// at [`MATCHES_RANKED`], stemmed by the English configuration; the queries are parsed once (in
/// `q`: written inline, a prepared statement's generic plan parsed them again for every row
/// scanned, 275 ms a search at 10,000 markets); `ts_rank` weighs the name over
/// the description over the category (normalised into `0..1` by flag 32, so that `whole = 1`
/// puts every-word matches first). The words are letters and digits only
/// ([`SearchQuery::words`]), so they cannot break the `to_tsquery` syntax.
const POSTGRES: &str = "WITH q AS (SELECT to_tsquery('english', $1) AS every_word, \
        to_tsquery('english', $2) AS any_word), \
    candidates AS ( \
        (SELECT m.id, m.search, 1 AS whole FROM markets m, q \
            WHERE m.search @@ q.every_word AND ($3::text IS NULL OR m.status = $3) LIMIT $4) \
        UNION ALL \
        (SELECT m.id, m.search, 0 AS whole FROM markets m, q \
            WHERE m.search @@ q.any_word AND ($3::text IS NULL OR m.status = $3) LIMIT $4)) \
    SELECT c.id, max(c.whole + ts_rank(c.search, q.any_word, 32))::float8 AS score \
    FROM candidates c, q GROUP BY c.id ORDER BY score DESC, c.id LIMIT $5";

/// SQLite: the same two capped sets (FTS5: words side by side must all match, `OR` any), each
/// word quoted as an FTS5 string (so no word is read as an operator), ranked by BM25 with the
/// name weighing most (`bm25` is lower for better matches; `-b / (1 - b)` maps it into `0..1`).
const SQLITE: &str = "WITH candidates AS ( \
        SELECT * FROM (SELECT m.id AS id, 1 AS whole, -bm25(markets_fts, 10.0, 3.0, 1.0) AS s \
            FROM markets_fts JOIN markets m ON m.rowid = markets_fts.rowid \
            WHERE markets_fts MATCH ?1 AND (?3 IS NULL OR m.status = ?3) LIMIT ?4) \
        UNION ALL \
        SELECT * FROM (SELECT m.id AS id, 0 AS whole, -bm25(markets_fts, 10.0, 3.0, 1.0) AS s \
            FROM markets_fts JOIN markets m ON m.rowid = markets_fts.rowid \
            WHERE markets_fts MATCH ?2 AND (?3 IS NULL OR m.status = ?3) LIMIT ?4)) \
    SELECT id, max(whole + s / (1.0 + s)) AS score FROM candidates \
    GROUP BY id ORDER BY score DESC, id LIMIT ?5";

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
        let words = query.words();
        let (sql, every_word, any_word) = match backend {
            DbBackend::Postgres => (POSTGRES, words.join(" & "), words.join(" | ")),
            _ => {
                let quoted: Vec<String> = words.iter().map(|word| format!("\"{word}\"")).collect();
                (SQLITE, quoted.join(" "), quoted.join(" OR "))
            }
        };
        let status: Value = status.map(|status| status.as_str().to_owned()).into();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = connection
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    every_word.into(),
                    any_word.into(),
                    status,
                    MATCHES_RANKED.into(),
                    limit.into(),
                ],
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
