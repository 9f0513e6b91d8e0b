//! `InMemoryKeywordSearch`: the keyword-search port over the markets of an [`crate::InMemoryStore`], by whole words.

use async_trait::async_trait;
use domain::MarketStatus;
use domain::ports::{KeywordSearch, RepositoryError};
use domain::search::{ScoredMarket, SearchQuery, searchable_text, words_of};

use crate::store::Scope;

/// Scores a market by how many of the query's words it contains (name words count double),
/// without stemming: enough for use-case tests; the SQL adapters rank properly.
#[derive(Debug)]
pub struct InMemoryKeywordSearch {
    scope: Scope,
}

impl InMemoryKeywordSearch {
    pub(crate) const fn in_scope(scope: Scope) -> Self {
        Self { scope }
    }
}

#[async_trait]
impl KeywordSearch for InMemoryKeywordSearch {
    async fn search(
        &self,
        query: &SearchQuery,
        status: Option<MarketStatus>,
        limit: u64,
    ) -> Result<Vec<ScoredMarket>, RepositoryError> {
        let mut found = self.scope.read(|state| {
            state
                .markets
                .values()
                .filter(|market| status.is_none_or(|status| market.status == status))
                .filter_map(|market| {
                    let name: Vec<String> = words_of(market.name.as_str()).collect();
                    let all: Vec<String> = words_of(&searchable_text(market)).collect();
                    let score: f32 = query
                        .words()
                        .iter()
                        .map(|word| {
                            f32::from(u8::from(all.contains(word)))
                                + f32::from(u8::from(name.contains(word)))
                        })
                        .sum();
                    (score > 0.0).then_some(ScoredMarket {
                        market_id: market.id,
                        score,
                    })
                })
                .collect::<Vec<_>>()
        })?;
        found.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.market_id.cmp(&b.market_id))
        });
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn rebuild(&self) -> Result<u64, RepositoryError> {
        self.scope
            .read(|state| u64::try_from(state.markets.len()).unwrap_or(u64::MAX))
    }
}
