//! `InProcessVectorIndex`: exact nearest neighbours over every market's embedding, kept in memory as 8-bit integers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::RwLock;

use async_trait::async_trait;
use domain::MarketId;
use domain::ports::{VectorIndex, VectorIndexError};
use domain::search::{Embedding, ScoredMarket};

/// Every embedding of a process, compared one by one (exact: no recall lost to an approximate
/// structure). Components of unit vectors lie in `-1..=1` and are stored as `i8` (x127): a
/// 256-dimension market takes 256 bytes, 10,000 markets 2.5 MiB, 100,000 markets 25 MiB, and the
/// ranking moves by less than the quantisation step (1/127) of the similarity. The vectors lie
/// end to end in one buffer, so a search is one pass over contiguous memory that the compiler
/// vectorises, keeping the best `limit` in a small heap: 100,000 markets are 26 million
/// multiply-adds (docs/performance.md, Q2). Past a few hundred thousand markets, use an
/// approximate index (pgvector's HNSW).
#[derive(Debug)]
pub struct InProcessVectorIndex {
    dimensions: usize,
    store: RwLock<Store>,
}

/// Market `ids[n]` has the vector `vectors[n * dimensions..(n + 1) * dimensions]`.
#[derive(Debug, Default)]
struct Store {
    ids: Vec<MarketId>,
    vectors: Vec<i8>,
    slots: HashMap<MarketId, usize>,
}

impl InProcessVectorIndex {
    #[must_use]
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions,
            store: RwLock::new(Store::default()),
        }
    }

    fn check(&self, embedding: &Embedding) -> Result<(), VectorIndexError> {
        VectorIndexError::unless_dimensions(self.dimensions, embedding)
    }
}

fn quantised(embedding: &Embedding) -> impl Iterator<Item = i8> + '_ {
    embedding.values().iter().map(|value| {
        #[allow(clippy::cast_possible_truncation)] // clamped to the i8 range first
        let step = (value * 127.0).round().clamp(-127.0, 127.0) as i8;
        step
    })
}

/// The dot product of two quantised vectors (`|result| <= dimensions * 127^2`).
fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum()
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
        let dimensions = self.dimensions;
        let mut store = self.store.write().map_err(poisoned)?;
        if let Some(&slot) = store.slots.get(&market) {
            let start = slot * dimensions;
            for (stored, value) in store.vectors[start..start + dimensions]
                .iter_mut()
                .zip(quantised(embedding))
            {
                *stored = value;
            }
        } else {
            let slot = store.ids.len();
            store.ids.push(market);
            store.vectors.extend(quantised(embedding));
            store.slots.insert(market, slot);
        }
        Ok(())
    }

    async fn remove(&self, market: MarketId) -> Result<(), VectorIndexError> {
        let dimensions = self.dimensions;
        let mut store = self.store.write().map_err(poisoned)?;
        let Some(slot) = store.slots.remove(&market) else {
            return Ok(());
        };
        // The last market moves into the freed slot.
        let last = store.ids.len() - 1;
        store.ids.swap_remove(slot);
        if slot != last {
            store.vectors.copy_within(
                last * dimensions..(last + 1) * dimensions,
                slot * dimensions,
            );
            let moved = store.ids[slot];
            store.slots.insert(moved, slot);
        }
        store.vectors.truncate(last * dimensions);
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
        let query: Vec<i8> = quantised(query).collect();
        let store = self.store.read().map_err(poisoned)?;
        // The best `limit` so far; its top is the worst of them (lowest dot, then highest id).
        let mut best: BinaryHeap<(Reverse<i32>, MarketId)> = BinaryHeap::with_capacity(limit + 1);
        for (vector, id) in store.vectors.chunks_exact(self.dimensions).zip(&store.ids) {
            let candidate = (Reverse(dot(vector, &query)), *id);
            if best.len() < limit {
                best.push(candidate);
            } else if best.peek().is_some_and(|worst| candidate < *worst) {
                best.pop();
                best.push(candidate);
            }
        }
        drop(store);
        #[allow(clippy::cast_precision_loss)] // |dot| <= 256 * 127^2 < 2^24: exact in f32
        Ok(best
            .into_sorted_vec()
            .into_iter()
            .map(|(Reverse(dot), market_id)| ScoredMarket {
                market_id,
                score: dot as f32 / (127.0 * 127.0),
            })
            .collect())
    }

    async fn count(&self) -> Result<usize, VectorIndexError> {
        Ok(self.store.read().map_err(poisoned)?.ids.len())
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

    #[tokio::test]
    async fn removing_moves_the_last_market_into_the_freed_slot() {
        let index = InProcessVectorIndex::new(2);
        let east = Embedding::normalized(vec![1.0, 0.0]);
        let north = Embedding::normalized(vec![0.0, 1.0]);
        let west = Embedding::normalized(vec![-1.0, 0.0]);
        for (n, vector) in [(1, &east), (2, &north), (3, &west)] {
            index.upsert(id(n), vector).await.expect("stored");
        }
        index.remove(id(1)).await.expect("removed");
        index.remove(id(1)).await.expect("removed twice");
        // id(3) now sits in the first slot with its own vector; replacing it keeps one copy.
        let found = index.nearest(&west, 3).await.expect("searched");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].market_id, id(3));
        assert!((found[0].score - 1.0).abs() < 0.02, "{found:?}");
        index.upsert(id(3), &north).await.expect("replaced");
        let found = index.nearest(&north, 3).await.expect("searched");
        assert_eq!(
            found.iter().map(|s| s.market_id).collect::<Vec<_>>(),
            [id(2), id(3)],
            "equal similarity: ties by id"
        );
        assert_eq!(index.count().await.expect("counted"), 2);
    }
}
