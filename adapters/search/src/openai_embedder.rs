//! `OpenAiEmbedder`: embeddings from an OpenAI-compatible `POST /embeddings` API, with a timeout and retries of transient failures.

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use domain::ports::{EmbeddingError, EmbeddingProvider};
use domain::search::Embedding;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Where the API is and how to call it.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Base URL without `/embeddings`, e.g. `http://127.0.0.1:11434/v1`; plain HTTP only (a
    /// local model server, or a proxy that adds TLS).
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token when set.
    pub api_key: Option<SecretString>,
    /// The length of the vectors the model returns; others are refused.
    pub dimensions: usize,
    /// Limit of one request.
    pub timeout: Duration,
    /// Retries of a transient failure (timeout, connection error, 429, 5xx).
    pub retries: u32,
}

/// An OpenAI-compatible embeddings client (Ollama, vLLM, LocalAI, llama.cpp's server...; OpenAI
/// itself through a TLS-terminating proxy: this client speaks plain HTTP only).
///
/// Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter, up
/// to `retries` times; other 4xx answers (a bad key, an unknown model) are not.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: String,
    settings: OpenAiSettings,
    /// Delay before the first retry; it doubles per retry.
    retry_base: Duration,
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    index: usize,
}

/// One failed attempt, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("request failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("the API answered {status}")]
    Status { status: reqwest::StatusCode },
    #[error("{0}")]
    BadResponse(String),
}

impl AttemptError {
    /// Worth another attempt: timeouts, connection errors, 429 and 5xx.
    fn is_transient(&self) -> bool {
        match self {
            Self::Transport(error) => {
                error.is_timeout() || error.is_connect() || error.is_request()
            }
            Self::Status { status } => {
                *status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Self::BadResponse(_) => false,
        }
    }
}

impl From<AttemptError> for EmbeddingError {
    fn from(error: AttemptError) -> Self {
        if error.is_transient() {
            Self::Unavailable(error.to_string())
        } else {
            Self::Rejected(error.to_string())
        }
    }
}

impl OpenAiEmbedder {
    /// A client for `settings`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(settings: OpenAiSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()?;
        Ok(Self {
            client,
            url: format!("{}/embeddings", settings.base_url.trim_end_matches('/')),
            settings,
            retry_base: Duration::from_millis(200),
        })
    }

    /// The same client with another first retry delay (tests use a short one).
    #[must_use]
    pub fn with_retry_base(self, retry_base: Duration) -> Self {
        Self { retry_base, ..self }
    }

    async fn attempt(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, AttemptError> {
        let mut request = self.client.post(&self.url).json(&EmbeddingRequest {
            model: &self.settings.model,
            input: texts,
        });
        if let Some(key) = &self.settings.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.map_err(AttemptError::Transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(AttemptError::Status { status });
        }
        let body: EmbeddingResponse = response.json().await.map_err(|error| {
            if error.is_decode() {
                AttemptError::BadResponse(format!("not an embeddings response: {error}"))
            } else {
                AttemptError::Transport(error)
            }
        })?;
        self.vectors(body, texts.len())
    }

    /// The vectors of `body` in input order, checked: one per text, each of the configured size.
    fn vectors(
        &self,
        body: EmbeddingResponse,
        expected: usize,
    ) -> Result<Vec<Vec<f32>>, AttemptError> {
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in body.data {
            if item.embedding.len() != self.settings.dimensions {
                return Err(AttemptError::BadResponse(format!(
                    "a vector of {} dimensions, {} configured (search.dimensions)",
                    item.embedding.len(),
                    self.settings.dimensions
                )));
            }
            match vectors.get_mut(item.index) {
                Some(slot) => *slot = Some(item.embedding),
                None => {
                    return Err(AttemptError::BadResponse(format!(
                        "index {} for {expected} inputs",
                        item.index
                    )));
                }
            }
        }
        vectors
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| AttemptError::BadResponse("a vector is missing".to_owned()))
    }
}

#[async_trait]
impl EmbeddingProvider for OpenAiEmbedder {
    fn name(&self) -> String {
        format!("openai-compatible {}", self.settings.model)
    }

    fn dimensions(&self) -> usize {
        self.settings.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>, EmbeddingError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry_base)
            .with_max_delay(self.retry_base.saturating_mul(32))
            .with_jitter()
            .with_max_times(usize::try_from(self.settings.retries).unwrap_or(usize::MAX));
        (|| self.attempt(texts))
            .retry(backoff)
            .when(AttemptError::is_transient)
            .notify(|error, wait| {
                tracing::warn!(
                    url = %self.url,
                    %error,
                    retry_in_ms = wait.as_millis(),
                    "embedding request failed; retrying"
                );
            })
            .await
            .map(|vectors| vectors.into_iter().map(Embedding::normalized).collect())
            .map_err(EmbeddingError::from)
    }
}
