//! `InProcessVectorIndex`: exact nearest neighbours over every market's embedding, kept in memory as 8-bit integers.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use domain::MarketId;
use domain::ports::{VectorIndex, VectorIndexError};
use domain::search::{Embedding, ScoredMarket};

/// Every embedding of a process, compared one by one (exact: no recall lost to an approximate
/// structure). Components of unit vectors lie in `-1..=1` and are stored as `i8` (x127): a
/// 256-dimension market takes 256 bytes, 10,000 markets 2.5 MiB, 100,000 markets 25 MiB, and the
/// ranking moves by less than the quantisation step (1/127) of the similarity. A search over
/// 100,000 markets is 26 million multiply-adds: a few milliseconds on one core. Past a few hundred thousand markets, use an approximate index (pgvector's HNSW).
#[derive(Debug)]
pub struct InProcessVectorIndex {
    dimensions: usize,
    vectors: RwLock<HashMap<MarketId, Vec<i8>>>,
}

impl InProcessVectorIndex {
    #[must_use]
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions,
            vectors: RwLock::new(HashMap::new()),
        }
    }

    fn check(&self, embedding: &Embedding) -> Result<(), VectorIndexError> {
        if embedding.dimensions() == self.dimensions {
            Ok(())
        } else {
            Err(VectorIndexError::Dimensions {
                expected: self.dimensions,
                got: embedding.dimensions(),
            })
        }
    }
}

fn quantised(embedding: &Embedding) -> Vec<i8> {
    embedding
        .values()
        .iter()
        .map(|value| {
            #[allow(clippy::cast_possible_truncation)] // clamped to the i8 range first
            let step = (value * 127.0).round().clamp(-127.0, 127.0) as i8;
            step
        })
        .collect()
}

fn poisoned<T>(_: T) -> VectorIndexError {
    VectorIndexError::Unavailable("the index lock is poisoned".to_owned())
}

#[async_trait]
impl VectorIndex for InProcessVectorIndex {
    fn kind(&self) -> &'static str {
        "in-process exact"
    }

    async fn upsert(
        &self,
        market: MarketId,
        embedding: &Embedding,
    ) -> Result<(), VectorIndexError> {
        self.check(embedding)?;
        self.vectors
            .write()
            .map_err(poisoned)?
            .insert(market, quantised(embedding));
        Ok(())
    }

    async fn remove(&self, market: MarketId) -> Result<(), VectorIndexError> {
        self.vectors.write().map_err(poisoned)?.remove(&market);
        Ok(())
    }

    async fn nearest(
        &self,
        query: &Embedding,
        limit: usize,
    ) -> Result<Vec<ScoredMarket>, VectorIndexError> {
        self.check(query)?;
        let query = quantised(query);
        let vectors = self.vectors.read().map_err(poisoned)?;
        let mut scored: Vec<(i32, MarketId)> = vectors
            .iter()
            .map(|(id, vector)| {
                let dot = vector
                    .iter()
                    .zip(&query)
                    .map(|(a, b)| i32::from(*a) * i32::from(*b))
                    .sum::<i32>();
                (dot, *id)
            })
            .collect();
        drop(vectors);
        let limit = limit.min(scored.len());
        if limit == 0 {
            return Ok(Vec::new());
        }
        let by_score = |a: &(i32, MarketId), b: &(i32, MarketId)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        scored.select_nth_unstable_by(limit - 1, by_score);
        scored.truncate(limit);
        scored.sort_by(by_score);
        #[allow(clippy::cast_precision_loss)] // |dot| <= 256 * 127^2 < 2^24: exact in f32
        Ok(scored
            .into_iter()
            .map(|(dot, market_id)| ScoredMarket {
                market_id,
                score: dot as f32 / (127.0 * 127.0),
            })
            .collect())
    }

    async fn count(&self) -> Result<usize, VectorIndexError> {
        Ok(self.vectors.read().map_err(poisoned)?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id(n: u128) -> MarketId {
        MarketId::from_uuid(Uuid::from_u128(n))
    }

    #[tokio::test]
    async fn the_nearest_come_first_and_removed_ones_never() {
        let index = InProcessVectorIndex::new(2);
        let east = Embedding::normalized(vec![1.0, 0.0]);
        let north_east = Embedding::normalized(vec![1.0, 1.0]);
        let north = Embedding::normalized(vec![0.0, 1.0]);
        index.upsert(id(1), &north).await.expect("stored");
        index.upsert(id(2), &north_east).await.expect("stored");
        index.upsert(id(3), &east).await.expect("stored");
        let found = index.nearest(&east, 2).await.expect("searched");
        assert_eq!(
            found.iter().map(|s| s.market_id).collect::<Vec<_>>(),
            [id(3), id(2)]
        );
        assert!((found[0].score - 1.0).abs() < 0.02, "{found:?}");
        assert!((found[1].score - 0.707).abs() < 0.02, "{found:?}");
        index.remove(id(3)).await.expect("removed");
        assert_eq!(index.count().await.expect("counted"), 2);
        assert_eq!(
            index.nearest(&east, 10).await.expect("searched")[0].market_id,
            id(2)
        );
        index.upsert(id(2), &north).await.expect("replaced");
        assert_eq!(index.count().await.expect("counted"), 2);
        assert!(matches!(
            index.upsert(id(4), &Embedding::normalized(vec![1.0])).await,
            Err(VectorIndexError::Dimensions {
                expected: 2,
                got: 1
            })
        ));
        assert!(index.nearest(&east, 0).await.expect("searched").is_empty());
    }
}
