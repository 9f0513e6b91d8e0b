//! The search ports' adapters that need no service: [`LocalEmbedder`] (hashed character n-grams
//! and words, with a small synonym table; no network, no model files) and [`InProcessVectorIndex`]
//! (exact cosine search over 8-bit quantised vectors).

mod local_embedder;
mod vector_index;

pub use local_embedder::LocalEmbedder;
pub use vector_index::InProcessVectorIndex;
