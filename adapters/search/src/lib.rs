//! The search ports' adapters: [`LocalEmbedder`] (hashed character n-grams and words, with a
//! small synonym table; no network, no model files), [`OpenAiEmbedder`] (an OpenAI-compatible
//! embeddings API, with a timeout and retries) and [`InProcessVectorIndex`] (exact cosine search
//! over 8-bit quantised vectors).

mod local_embedder;
mod openai_embedder;
mod vector_index;

pub use local_embedder::LocalEmbedder;
pub use openai_embedder::{OpenAiEmbedder, OpenAiSettings};
pub use vector_index::InProcessVectorIndex;
