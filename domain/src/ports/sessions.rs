//! The session store port: sessions and the refresh tokens of their families.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::repository::RepositoryError;
use crate::id::{SessionId, UserId};
use crate::session::{RefreshToken, RevokeReason, SecretDigest, Session};

/// Sessions by id, by cookie secret and by user, and their refresh tokens. Available outside
/// transactions (reads, and single-row writes that need no other change) and inside a
/// [`crate::ports::Transaction`] (a password change and the revocation of the other sessions
/// commit together).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores a new session.
    ///
    /// # Errors
    /// - [`RepositoryError::Conflict`]`("user_id")` when the user does not exist;
    /// - [`RepositoryError::Conflict`]`("id")` when the id exists already;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError>;

    /// The session with this id, revoked and expired ones included, if it exists (a deleted
    /// user's sessions do not).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find(&self, id: SessionId) -> Result<Option<Session>, RepositoryError>;

    /// The cookie-mode session whose secret has this digest, if any.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find_by_secret(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<Session>, RepositoryError>;

    /// The user's sessions that are neither revoked nor expired at `now`, newest first, at most
    /// `limit`.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn list_active(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Session>, RepositoryError>;

    /// Records a use: `last_used_at` and `idle_expires_at` as given. Returns `false` when no such
    /// session exists.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn touch(&self, session: &Session) -> Result<bool, RepositoryError>;

    /// Revokes one session at `now` unless it is revoked already. Returns whether this call
    /// revoked it.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Revokes every session of `user` not revoked yet, except `keep`. Returns how many.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError>;

    /// Stores a new refresh token of a session's family.
    ///
    /// # Errors
    /// - [`RepositoryError::Conflict`]`("session_id")` when the session does not exist;
    /// - [`RepositoryError::Conflict`]`("digest")` when the digest exists already;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), RepositoryError>;

    /// The refresh token with this digest, used or not, if any.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find_refresh_token(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<RefreshToken>, RepositoryError>;

    /// Marks an unused refresh token used at `now`, atomically: of two concurrent calls for one
    /// token exactly one gets `true`. `false` when it was used already or does not exist.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn use_refresh_token(
        &self,
        digest: &SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;
}
