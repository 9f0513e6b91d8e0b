//! `LocalEmbedder`: a deterministic embedding from hashed character trigrams, word stems and a small synonym table.

use async_trait::async_trait;
use domain::ports::{EmbeddingError, EmbeddingProvider};
use domain::search::{Embedding, words_of};

/// What it captures, honestly:
/// - **misspellings and word forms**: a word contributes its character trigrams (with word-edge
///   markers), so `electon` shares most trigrams with `election`, and `elections` with both;
/// - **shared stems**: each word also contributes its crude stem (common English suffixes cut);
/// - **a few near-synonyms**: [`SYNONYMS`] maps some words of the example domain to a shared
///   concept (`btc` and `crypto` to `bitcoin`, `vote` and `poll` to `election`, ...). Anything
///   outside that table is not understood: `automobile` is not close to `car`. A real model
///   behind [`EmbeddingProvider`] (an OpenAI-compatible API) is what captures meaning.
///
/// Features are hashed (FNV-1a) into [`LocalEmbedder::DIMENSIONS`] signed buckets and the vector
/// is normalised; the same text always gives the same embedding, on every machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalEmbedder;

/// Words of the example domain and the concept each stands for.
pub const SYNONYMS: &[(&str, &str)] = &[
    ("btc", "bitcoin"),
    ("crypto", "bitcoin"),
    ("cryptocurrency", "bitcoin"),
    ("eth", "ethereum"),
    ("ether", "ethereum"),
    ("vote", "election"),
    ("votes", "election"),
    ("voting", "election"),
    ("poll", "election"),
    ("polls", "election"),
    ("ballot", "election"),
    ("president", "election"),
    ("presidential", "election"),
    ("rain", "weather"),
    ("snow", "weather"),
    ("storm", "weather"),
    ("temperature", "weather"),
    ("football", "soccer"),
    ("championship", "cup"),
    ("tournament", "cup"),
    ("trophy", "cup"),
    ("win", "victory"),
    ("wins", "victory"),
    ("winner", "victory"),
    ("beat", "victory"),
    ("stocks", "market"),
    ("shares", "market"),
    ("equities", "market"),
    ("nasdaq", "market"),
    ("rates", "interest"),
    ("fed", "interest"),
    ("inflation", "prices"),
    ("cpi", "prices"),
    ("ai", "intelligence"),
    ("artificial", "intelligence"),
    ("launch", "release"),
    ("ship", "release"),
    ("rocket", "space"),
    ("mars", "space"),
    ("moon", "space"),
];

impl LocalEmbedder {
    pub const DIMENSIONS: usize = 256;

    /// The embedding of one text.
    #[must_use]
    pub fn embed_one(text: &str) -> Embedding {
        let mut vector = vec![0.0_f32; Self::DIMENSIONS];
        for word in words_of(text) {
            let stem = stem(&word);
            add(&mut vector, &format!("w:{stem}"), 2.0);
            if let Some((_, concept)) = SYNONYMS.iter().find(|(synonym, _)| *synonym == word) {
                add(&mut vector, &format!("w:{concept}"), 3.0);
            }
            let marked: Vec<char> = format!("<{word}>").chars().collect();
            for trigram in marked.windows(3) {
                add(&mut vector, &trigram.iter().collect::<String>(), 1.0);
            }
        }
        Embedding::normalized(vector)
    }
}

/// Cuts a few common English suffixes, keeping at least three letters.
fn stem(word: &str) -> &str {
    for suffix in [
        "ations", "ation", "ings", "ing", "ies", "es", "ed", "ly", "s",
    ] {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.chars().count() >= 3
        {
            return stem;
        }
    }
    word
}

/// Adds `weight` to the feature's bucket, with a sign from the hash (so that collisions cancel
/// out on average instead of piling up).
fn add(vector: &mut [f32], feature: &str, weight: f32) {
    let hash = fnv1a(feature.as_bytes());
    let bucket = usize::try_from(hash % LocalEmbedder::DIMENSIONS as u64).unwrap_or(0);
    let sign = if hash & (1 << 63) == 0 { 1.0 } else { -1.0 };
    vector[bucket] += sign * weight;
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[async_trait]
impl EmbeddingProvider for LocalEmbedder {
    fn name(&self) -> String {
        format!("local-hashed-ngrams-{}", Self::DIMENSIONS)
    }

    fn dimensions(&self) -> usize {
        Self::DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>, EmbeddingError> {
        Ok(texts.iter().map(|text| Self::embed_one(text)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn similarity(a: &str, b: &str) -> f32 {
        LocalEmbedder::embed_one(a).cosine(&LocalEmbedder::embed_one(b))
    }

    #[test]
    fn the_same_text_gives_the_same_unit_vector() {
        let a = LocalEmbedder::embed_one("Will it rain in Paris?");
        assert_eq!(a, LocalEmbedder::embed_one("Will it rain in Paris?"));
        assert!((a.cosine(&a) - 1.0).abs() < 1e-5);
        assert_eq!(a.dimensions(), 256);
    }

    #[test]
    fn misspellings_stay_closer_than_unrelated_words() {
        let typo = similarity(
            "presidential electon",
            "Who wins the presidential election?",
        );
        let unrelated = similarity("presidential electon", "Will Bitcoin close above 100k?");
        assert!(typo > 0.4, "{typo}");
        assert!(typo > unrelated + 0.3, "{typo} vs {unrelated}");
    }

    #[test]
    fn table_synonyms_are_close_and_others_are_not_understood() {
        let synonym = similarity("btc", "Will bitcoin reach a new high?");
        let unrelated = similarity("btc", "Will it snow in Madrid?");
        assert!(
            synonym > 0.1 && synonym > unrelated + 0.05,
            "{synonym} vs {unrelated}"
        );
        assert!(similarity("automobile", "car") < 0.2);
    }

    #[test]
    fn stems_are_cut_but_short_words_kept() {
        assert_eq!(stem("elections"), "election");
        assert_eq!(stem("raining"), "rain");
        assert_eq!(stem("is"), "is");
        assert_eq!(stem("gas"), "gas");
    }
}
