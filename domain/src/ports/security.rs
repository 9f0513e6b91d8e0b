//! Security ports: password hashing and access tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BoxError;
use crate::access::Actor;
use crate::user::{Password, PasswordHash};

/// The hasher itself failed (not a wrong password: that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError(#[source] pub BoxError);

/// Hashes and verifies passwords. Implementations MUST be slow on purpose (a memory-hard KDF),
/// MUST NOT block the async executor, and MUST bound how many hashes run at once.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A new salted hash of `password`.
    ///
    /// # Errors
    /// [`HashError`] when the hasher fails.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Whether `candidate` matches `hash`. With `hash = None` (unknown account) it MUST spend the
    /// same time verifying against a dummy hash and return `false`, so that response times do not
    /// tell which accounts exist.
    ///
    /// # Errors
    /// [`HashError`] when the hasher fails or the stored hash is unreadable.
    async fn verify(&self, candidate: &str, hash: Option<PasswordHash>) -> Result<bool, HashError>;

    /// Whether `hash` was made with another algorithm or weaker (or merely different) costs than
    /// the ones configured now: after a successful verification the caller re-hashes the password
    /// and stores the new hash. An unreadable hash needs re-hashing too.
    fn needs_rehash(&self, hash: &PasswordHash) -> bool;
}

/// An access token and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in_seconds: u64,
}

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub actor: Actor,
    pub token_id: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was not accepted, or could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Well-formed and correctly signed, but past its expiry.
    #[error("token expired")]
    Expired,
    /// Anything else wrong with a presented token: syntax, signature, algorithm, issuer,
    /// audience, missing or malformed claims.
    #[error("invalid token")]
    Invalid,
    /// The issuer failed to produce a token.
    #[error("token could not be issued")]
    Issuing(#[source] BoxError),
}

/// Issues and verifies signed, short-lived access tokens.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait TokenIssuer: Send + Sync {
    /// A token for `actor`.
    ///
    /// # Errors
    /// [`TokenError::Issuing`] when signing fails.
    fn issue(&self, actor: &Actor) -> Result<IssuedToken, TokenError>;

    /// Checks signature, algorithm, issuer, audience, expiry and claims.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`].
    fn verify(&self, token: &str) -> Result<AccessClaims, TokenError>;
}

impl std::fmt::Debug for dyn PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn PasswordHasher")
    }
}
