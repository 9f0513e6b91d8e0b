//! Search markets: keyword and vector search fused by reciprocal rank, the markets loaded by id in one batch; and keeping the vector index current.

use std::sync::Arc;

use domain::listing::{FieldSet, MarketField, MarketListQuery, PageRequest};
use domain::ports::{EmbeddingProvider, KeywordSearch, VectorIndex};
use domain::search::{Embedding, ScoredMarket, SearchQuery, embedded_text, fuse, searchable_text};
use domain::{DomainEvent, Market, MarketId, MarketStatus};

use crate::{Unavailable, UseCases};

/// The search ports, together.
#[derive(Clone)]
pub struct SearchEngine {
    pub keywords: Arc<dyn KeywordSearch>,
    pub embedder: Arc<dyn EmbeddingProvider>,
    pub vectors: Arc<dyn VectorIndex>,
}

impl std::fmt::Debug for SearchEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchEngine")
            .field("embedder", &self.embedder.name())
            .field("vectors", &self.vectors.kind())
            .finish_non_exhaustive()
    }
}

/// A market found, with its fused relevance (higher is better).
#[derive(Debug, Clone)]
pub struct Found {
    pub market: Market,
    pub score: f32,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchMarketsError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Which lists a search is made of, for the recall report and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    Keyword,
    Vector,
    Hybrid,
}

/// The most results a search returns.
pub const MAX_SEARCH_LIMIT: u64 = 50;

/// Vector candidates less similar than this are dropped: nearest neighbours always exist, but a
/// market sharing nothing with the query is not a result (measured on the labelled set, where
/// every relevant market scores well above it: docs/search.md).
pub const MIN_SIMILARITY: f32 = 0.08;

/// Each list brings this many candidates per result asked for, so that filtering (the vector
/// side does not know a market's status) still fills the page.
const CANDIDATES_PER_RESULT: u64 = 4;

impl UseCases {
    /// Markets matching `query` (and `status`), best first, at most `limit`: keyword search (in
    /// the database) and vector search (the query's embedding against every market's) fused by
    /// reciprocal rank, then the markets loaded by id in one query. When the embedder or the
    /// index fails, the keyword results alone are returned (and a warning logged).
    ///
    /// # Errors
    /// [`SearchMarketsError::Unavailable`] when the database fails.
    pub async fn search_markets(
        &self,
        query: &SearchQuery,
        status: Option<MarketStatus>,
        limit: u64,
    ) -> Result<Vec<Found>, SearchMarketsError> {
        self.search_markets_by(SearchMode::Hybrid, query, status, limit)
            .await
    }

    /// [`UseCases::search_markets`] with only some of its lists (recall measurements).
    ///
    /// # Errors
    /// [`SearchMarketsError::Unavailable`] when the database fails.
    pub async fn search_markets_by(
        &self,
        mode: SearchMode,
        query: &SearchQuery,
        status: Option<MarketStatus>,
        limit: u64,
    ) -> Result<Vec<Found>, SearchMarketsError> {
        let limit = limit.clamp(1, MAX_SEARCH_LIMIT);
        let candidates = limit * CANDIDATES_PER_RESULT;
        let engine = &self.deps().search;
        let keyword = if mode == SearchMode::Vector {
            Vec::new()
        } else {
            engine
                .keywords
                .search(query, status, candidates)
                .await
                .map_err(Unavailable::from)?
        };
        let vector = if mode == SearchMode::Keyword {
            Vec::new()
        } else {
            self.nearest(query, candidates).await
        };
        let fused = fuse(&[&keyword, &vector]);
        let ids: Vec<MarketId> = fused.iter().map(|scored| scored.market_id).collect();
        let markets = self
            .deps()
            .market_reads
            .find_many(&ids)
            .await
            .map_err(Unavailable::from)?;
        let mut by_id: std::collections::HashMap<MarketId, Market> = markets
            .into_iter()
            .map(|market| (market.id, market))
            .collect();
        Ok(fused
            .into_iter()
            .filter_map(|ScoredMarket { market_id, score }| {
                by_id
                    .remove(&market_id)
                    .filter(|market| status.is_none_or(|status| market.status == status))
                    .map(|market| Found { market, score })
            })
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    /// The vector side of a search; empty (with a warning) when it cannot answer.
    async fn nearest(&self, query: &SearchQuery, candidates: u64) -> Vec<ScoredMarket> {
        let engine = &self.deps().search;
        let embedded = engine.embedder.embed(&[query.as_str().to_owned()]).await;
        let found = match embedded.map(|mut embeddings| embeddings.pop()) {
            Ok(Some(embedding)) => {
                let limit = usize::try_from(candidates).unwrap_or(usize::MAX);
                engine
                    .vectors
                    .nearest(&embedding, limit)
                    .await
                    .map(|found| {
                        found
                            .into_iter()
                            .filter(|scored| scored.score >= MIN_SIMILARITY)
                            .collect()
                    })
                    .map_err(|error| error.to_string())
            }
            Ok(None) => Err("the embedder returned nothing".to_owned()),
            Err(error) => Err(error.to_string()),
        };
        found.unwrap_or_else(|error| {
            tracing::warn!(%error, "vector search failed; keyword results only");
            Vec::new()
        })
    }

    /// Embeds the market (as stored now) and puts it in the vector index, or removes it when it
    /// no longer exists.
    ///
    /// # Errors
    /// [`Unavailable`] when the database, the embedder or the index fails.
    pub async fn index_market(&self, id: MarketId) -> Result<(), Unavailable> {
        let deps = self.deps();
        let Some(market) = deps.markets.find_by_id(id).await? else {
            return deps
                .search
                .vectors
                .remove(id)
                .await
                .map_err(Unavailable::from_error);
        };
        let embedding = self.embed(&[searchable_text(&market)]).await?;
        for (embedding, id) in embedding.iter().zip([market.id]) {
            deps.search
                .vectors
                .upsert(id, embedding)
                .await
                .map_err(Unavailable::from_error)?;
        }
        Ok(())
    }

    /// Keeps the vector index current from a domain event: a created or edited market is
    /// embedded again, a deleted one removed. Other events change nothing searched.
    ///
    /// # Errors
    /// [`Unavailable`] when the database, the embedder or the index fails.
    pub async fn index_after(&self, event: &DomainEvent) -> Result<(), Unavailable> {
        match event {
            DomainEvent::MarketCreated { market_id, .. }
            | DomainEvent::MarketUpdated { market_id, .. }
            | DomainEvent::MarketDeleted { market_id } => self.index_market(*market_id).await,
            _ => Ok(()),
        }
    }

    /// Prepares the vector index when a process starts: an in-process index is always rebuilt; a
    /// persistent one (pgvector) only when it holds another number of markets than the database
    /// (created by `server seed`, or while no instance ran). Returns how many markets are indexed
    /// and whether it rebuilt.
    ///
    /// # Errors
    /// [`Unavailable`] when the database, the embedder or the index fails.
    pub async fn prepare_vector_index(&self) -> Result<(u64, bool), Unavailable> {
        let deps = self.deps();
        if deps.search.vectors.persistent() {
            let indexed = self.indexed_markets().await?;
            let markets = deps
                .markets
                .list(&MarketListQuery {
                    page: PageRequest::new(1, 0).map_err(Unavailable::from_error)?,
                    fields: FieldSet::parse("name").unwrap_or_else(|_| FieldSet::all()),
                    ..MarketListQuery::default()
                })
                .await?
                .total;
            if indexed == markets {
                return Ok((indexed, false));
            }
        }
        Ok((self.rebuild_vector_index().await?, true))
    }

    /// Embeds every market again and fills the vector index, 100 markets per database page and
    /// embedder call; returns how many are indexed. Runs at start-up and in `server reindex`.
    ///
    /// # Errors
    /// [`Unavailable`] when the database, the embedder or the index fails.
    pub async fn rebuild_vector_index(&self) -> Result<u64, Unavailable> {
        let deps = self.deps();
        let fields = FieldSet::parse("name")
            .unwrap_or_else(|_| FieldSet::all())
            .with(MarketField::Category);
        let mut offset = 0;
        loop {
            let page = PageRequest::new(PageRequest::MAX_LIMIT, offset)
                .map_err(Unavailable::from_error)?;
            let listed = deps
                .markets
                .list(&MarketListQuery {
                    page,
                    fields: fields.clone(),
                    ..MarketListQuery::default()
                })
                .await?;
            if listed.items.is_empty() {
                break;
            }
            let texts: Vec<String> = listed
                .items
                .iter()
                .map(|market| {
                    embedded_text(
                        market.name.as_ref().map_or("", |n| n.as_str()),
                        market.category.as_ref().map_or("", |c| c.as_str()),
                    )
                })
                .collect();
            let embeddings = self.embed(&texts).await?;
            let entries: Vec<(MarketId, Embedding)> = listed
                .items
                .iter()
                .map(|market| market.id)
                .zip(embeddings)
                .collect();
            deps.search
                .vectors
                .upsert_many(&entries)
                .await
                .map_err(Unavailable::from_error)?;
            offset += PageRequest::MAX_LIMIT;
            if offset > PageRequest::MAX_OFFSET {
                break;
            }
        }
        self.indexed_markets().await
    }

    /// How many markets the vector index holds.
    async fn indexed_markets(&self) -> Result<u64, Unavailable> {
        let indexed = self
            .deps()
            .search
            .vectors
            .count()
            .await
            .map_err(Unavailable::from_error)?;
        Ok(u64::try_from(indexed).unwrap_or(u64::MAX))
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>, Unavailable> {
        let embeddings = self
            .deps()
            .search
            .embedder
            .embed(texts)
            .await
            .map_err(Unavailable::from_error)?;
        if embeddings.len() == texts.len() {
            Ok(embeddings)
        } else {
            Err(Unavailable::from_error(
                domain::ports::EmbeddingError::Rejected(format!(
                    "{} embeddings for {} texts",
                    embeddings.len(),
                    texts.len()
                )),
            ))
        }
    }
}
