//! Market search as pure rules: the query's bounds and words, embeddings as unit vectors, and
//! reciprocal rank fusion of several ranked lists.

use std::collections::HashMap;

use crate::id::MarketId;

/// Why a search query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchQueryError {
    #[error("must be 1 to {max} characters")]
    Length { max: usize },
    #[error("must not contain control characters")]
    ControlCharacters,
    #[error("must contain at least one letter or digit")]
    NoWords,
}

/// What a client searches for: 1 to 200 characters (as sent, surrounding spaces included), no
/// control characters anywhere, at least one word (a run of letters or digits). Words are
/// lower-cased; at most [`SearchQuery::MAX_WORDS`] are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    text: String,
    words: Vec<String>,
}

impl SearchQuery {
    pub const MAX_LEN: usize = 200;
    pub const MAX_WORDS: usize = 16;

    /// # Errors
    /// [`SearchQueryError`] when blank or too long, with control characters, or without a word.
    pub fn parse(text: &str) -> Result<Self, SearchQueryError> {
        let length = text.chars().count();
        if length == 0 || length > Self::MAX_LEN {
            return Err(SearchQueryError::Length { max: Self::MAX_LEN });
        }
        if text.chars().any(char::is_control) {
            return Err(SearchQueryError::ControlCharacters);
        }
        let text = text.trim();
        let mut words: Vec<String> = Vec::new();
        for word in words_of(text) {
            if !words.contains(&word) && words.len() < Self::MAX_WORDS {
                words.push(word);
            }
        }
        if words.is_empty() {
            return Err(SearchQueryError::NoWords);
        }
        Ok(Self {
            text: text.to_owned(),
            words,
        })
    }

    /// The query as typed (trimmed).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its distinct words, lower-cased, in order: letters and digits only, so that they are safe
    /// to put in a full-text query of any syntax.
    #[must_use]
    pub fn words(&self) -> &[String] {
        &self.words
    }
}

/// The words of a text: runs of letters and digits, lower-cased.
pub fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// The text of a market that vector search embeds: its name and category. The description is
/// left to keyword search: its many words would drown the few of the name in an embedding.
#[must_use]
pub fn searchable_text(market: &crate::Market) -> String {
    embedded_text(market.name.as_str(), market.category.as_str())
}

/// [`searchable_text`] from the fields themselves.
#[must_use]
pub fn embedded_text(name: &str, category: &str) -> String {
    format!("{name} {}", category.replace('-', " "))
}

/// A unit vector (L2 norm 1, or all zeros for a text without features): cosine similarity is the
/// dot product.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Scales `values` to unit length (all zeros stay zeros).
    #[must_use]
    pub fn normalized(mut values: Vec<f32>) -> Self {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for value in &mut values {
                *value /= norm;
            }
        }
        Self(values)
    }

    #[must_use]
    pub fn values(&self) -> &[f32] {
        &self.0
    }

    #[must_use]
    pub fn dimensions(&self) -> usize {
        self.0.len()
    }

    /// Cosine similarity with another embedding of the same dimensions (0 otherwise).
    #[must_use]
    pub fn cosine(&self, other: &Self) -> f32 {
        if self.0.len() != other.0.len() {
            return 0.0;
        }
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }
}

/// A market and how well it matches, higher is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredMarket {
    pub market_id: MarketId,
    pub score: f32,
}

/// The `k` of reciprocal rank fusion: how much the top ranks outweigh the rest (60 in the paper
/// that introduced it, Cormack et al. 2009, and in most search engines since).
pub const RRF_K: f32 = 60.0;

/// Reciprocal rank fusion: each market scores the sum of `1 / (k + rank)` over the lists it is
/// in (ranks from 1), best first, ties by id. A market first in one list and absent from another
/// beats one that is tenth in both; no list's raw scores need to be comparable.
#[must_use]
pub fn fuse(lists: &[&[ScoredMarket]]) -> Vec<ScoredMarket> {
    let mut scores: HashMap<MarketId, f32> = HashMap::new();
    for list in lists {
        for (index, scored) in list.iter().enumerate() {
            let rank = f32::from(u16::try_from(index + 1).unwrap_or(u16::MAX));
            *scores.entry(scored.market_id).or_default() += 1.0 / (RRF_K + rank);
        }
    }
    let mut fused: Vec<ScoredMarket> = scores
        .into_iter()
        .map(|(market_id, score)| ScoredMarket { market_id, score })
        .collect();
    fused.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.market_id.cmp(&b.market_id))
    });
    fused
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id(n: u128) -> MarketId {
        MarketId::from_uuid(Uuid::from_u128(n))
    }

    fn ranked(ids: &[u128]) -> Vec<ScoredMarket> {
        ids.iter()
            .map(|n| ScoredMarket {
                market_id: id(*n),
                score: 1.0,
            })
            .collect()
    }

    #[test]
    fn queries_are_bounded_and_split_into_safe_words() {
        let query =
            SearchQuery::parse("  Bitcoin's price: > $100k?? \"OR\" bitcoin ").expect("valid");
        assert_eq!(query.words(), ["bitcoin", "s", "price", "100k", "or"]);
        assert_eq!(
            SearchQuery::parse(""),
            Err(SearchQueryError::Length { max: 200 })
        );
        assert_eq!(
            SearchQuery::parse(&"a".repeat(201)),
            Err(SearchQueryError::Length { max: 200 })
        );
        assert_eq!(SearchQuery::parse("?!*"), Err(SearchQueryError::NoWords));
        for control in ["a\u{0}b", "rain\r", "\train"] {
            assert_eq!(
                SearchQuery::parse(control),
                Err(SearchQueryError::ControlCharacters),
                "{control:?}"
            );
        }
        assert_eq!(
            SearchQuery::parse(&format!("{} ", "a".repeat(200))),
            Err(SearchQueryError::Length { max: 200 }),
            "the length as sent"
        );
        let many = (0..40)
            .map(|n| format!("w{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(SearchQuery::parse(&many).expect("valid").words().len(), 16);
    }

    #[test]
    fn fusion_rewards_agreement_and_top_ranks() {
        let keyword = ranked(&[1, 2, 3]);
        let vector = ranked(&[3, 4, 1]);
        let fused = fuse(&[&keyword, &vector]);
        let order: Vec<MarketId> = fused.iter().map(|s| s.market_id).collect();
        // 1: 1/61 + 1/63; 3: 1/63 + 1/61 (tie, by id); 2: 1/62; 4: 1/62.
        assert_eq!(order, [id(1), id(3), id(2), id(4)]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
        assert!(fuse(&[]).is_empty());
    }

    #[test]
    fn embeddings_are_unit_vectors_and_cosine_is_their_dot_product() {
        let a = Embedding::normalized(vec![3.0, 4.0]);
        assert!((a.values()[0] - 0.6).abs() < 1e-6);
        assert!((a.cosine(&a) - 1.0).abs() < 1e-6);
        let zero = Embedding::normalized(vec![0.0, 0.0]);
        assert_eq!(zero.cosine(&a), 0.0);
        assert_eq!(a.cosine(&Embedding::normalized(vec![1.0])), 0.0);
    }
}
