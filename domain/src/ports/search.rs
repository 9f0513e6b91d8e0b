//! Search ports: turning text into embeddings, nearest neighbours among market embeddings, and
//! keyword (full-text) search over markets.

use async_trait::async_trait;

use super::repository::RepositoryError;
use crate::id::MarketId;
use crate::market::MarketStatus;
use crate::search::{Embedding, ScoredMarket, SearchQuery};

/// Why texts could not be embedded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbeddingError {
    /// The provider could not be reached, timed out or failed on its side (5xx, 429): worth
    /// retrying later. The text is for logs.
    #[error("the embedding provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (a 4xx other than 429, a malformed answer): retrying
    /// the same request will not help.
    #[error("the embedding provider refused the request: {0}")]
    Rejected(String),
}

/// Turns texts into embeddings of a fixed number of dimensions.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait EmbeddingProvider: Send + Sync {
    /// A short name for logs and `/health/ready` (`local-hashed-ngrams-256`, a model name, ...).
    fn name(&self) -> String;

    /// Dimensions of every embedding it returns.
    fn dimensions(&self) -> usize;

    /// One embedding per text, in order.
    ///
    /// # Errors
    /// [`EmbeddingError::Unavailable`] (transient) or [`EmbeddingError::Rejected`].
    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>, EmbeddingError>;
}

/// The vector index could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VectorIndexError {
    /// The embedding has other dimensions than the index.
    #[error("expected {expected} dimensions, got {got}")]
    Dimensions { expected: usize, got: usize },
    /// The index's store failed (a database-backed index). The text is for logs.
    #[error("the vector index is unavailable: {0}")]
    Unavailable(String),
}

impl VectorIndexError {
    /// `Ok` when `embedding` has the index's `expected` dimensions, else
    /// [`VectorIndexError::Dimensions`]: the check every index makes before storing or searching.
    ///
    /// # Errors
    /// [`VectorIndexError::Dimensions`] naming both lengths.
    pub fn unless_dimensions(expected: usize, embedding: &Embedding) -> Result<(), Self> {
        if embedding.dimensions() == expected {
            Ok(())
        } else {
            Err(Self::Dimensions {
                expected,
                got: embedding.dimensions(),
            })
        }
    }
}

/// Market embeddings and their nearest neighbours by cosine similarity.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// What kind of index this is (`in-process exact`, `pgvector`), for logs and readiness.
    fn kind(&self) -> &'static str;

    /// Whether the index keeps its embeddings across restarts (a database table). An in-process
    /// index (the default: `false`) starts empty and is rebuilt by every process at start.
    fn persistent(&self) -> bool {
        false
    }

    /// Stores (or replaces) the embedding of `market`.
    ///
    /// # Errors
    /// [`VectorIndexError::Dimensions`] or [`VectorIndexError::Unavailable`].
    async fn upsert(&self, market: MarketId, embedding: &Embedding)
    -> Result<(), VectorIndexError>;

    /// Stores (or replaces) the embeddings of many markets at once (a rebuild's page). The
    /// default upserts them one by one; an index with a cheaper batch overrides it.
    ///
    /// # Errors
    /// [`VectorIndexError::Dimensions`] or [`VectorIndexError::Unavailable`]; some entries may
    /// be stored when it fails (upserts are idempotent: run the batch again).
    async fn upsert_many(&self, entries: &[(MarketId, Embedding)]) -> Result<(), VectorIndexError> {
        for (market, embedding) in entries {
            self.upsert(*market, embedding).await?;
        }
        Ok(())
    }

    /// Forgets `market` (nothing happens when it is not indexed).
    ///
    /// # Errors
    /// [`VectorIndexError::Unavailable`].
    async fn remove(&self, market: MarketId) -> Result<(), VectorIndexError>;

    /// Up to `limit` markets, most similar first (ties by id), with their cosine similarity.
    ///
    /// # Errors
    /// [`VectorIndexError::Dimensions`] or [`VectorIndexError::Unavailable`].
    async fn nearest(
        &self,
        query: &Embedding,
        limit: usize,
    ) -> Result<Vec<ScoredMarket>, VectorIndexError>;

    /// How many markets are indexed.
    ///
    /// # Errors
    /// [`VectorIndexError::Unavailable`].
    async fn count(&self) -> Result<usize, VectorIndexError>;
}

/// Full-text search over markets' name, description and category, kept current by the store
/// itself (in the same transaction as every write).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait KeywordSearch: Send + Sync {
    /// Up to `limit` markets matching any word of `query` (and `status`, when given), best first
    /// (ties by id), with a relevance score that is higher for better matches. Words are matched
    /// after stemming where the store can (PostgreSQL's English configuration; SQLite's Porter
    /// stemmer).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn search(
        &self,
        query: &SearchQuery,
        status: Option<MarketStatus>,
        limit: u64,
    ) -> Result<Vec<ScoredMarket>, RepositoryError>;

    /// Rebuilds the keyword index from the markets table (`server reindex`). Returns how many
    /// markets it holds.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn rebuild(&self) -> Result<u64, RepositoryError>;
}
