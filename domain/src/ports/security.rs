//! Security ports: password hashing, access tokens and opaque secrets.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BoxError;
use crate::access::Actor;
use crate::id::SessionId;
use crate::session::SecretDigest;
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
    /// The user and the role they had when the token was issued (the session check reads the
    /// current role).
    pub actor: Actor,
    /// The session the token belongs to (`sid`).
    pub session_id: SessionId,
    pub token_id: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was not accepted, or could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Well-formed and correctly signed, but past its expiry.
    #[error("token expired")]
    Expired,
    /// Well-formed and correctly signed, but its `nbf` (not before) is still in the future.
    #[error("token not valid yet")]
    NotYetValid,
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
    /// A token for `actor` in `session`.
    ///
    /// # Errors
    /// [`TokenError::Issuing`] when signing fails.
    fn issue(&self, actor: &Actor, session: SessionId) -> Result<IssuedToken, TokenError>;

    /// Checks signature, algorithm, issuer, audience, expiry, not-before and claims. It does not
    /// know about sessions: the caller checks that the session is still active.
    ///
    /// # Errors
    /// [`TokenError::Expired`], [`TokenError::NotYetValid`] or [`TokenError::Invalid`].
    fn verify(&self, token: &str) -> Result<AccessClaims, TokenError>;
}

/// A new opaque secret: the text handed to the client once, and the digest that is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub secret: String,
    pub digest: SecretDigest,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// Makes opaque secrets (refresh tokens, session cookies, CSRF tokens) and digests presented ones.
/// Implementations MUST draw at least 256 bits from a cryptographically secure generator and
/// MUST digest with a function the stored digests can be compared with exactly (SHA-256).
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// A fresh secret and its digest.
    fn generate(&self) -> NewSecret;

    /// The digest of a presented secret, to look it up.
    fn digest(&self, presented: &str) -> SecretDigest;
}

impl std::fmt::Debug for dyn PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn PasswordHasher")
    }
}
