//! Repository ports: storing and loading users and markets.
//!
//! Timestamps in the domain carry whole microseconds (the [`crate::ports::Clock`] contract and
//! [`crate::Market::open`] guarantee it), so every adapter can store them exactly.

use async_trait::async_trait;

use super::BoxError;
use crate::id::{MarketId, UserId};
use crate::listing::{MarketListQuery, MarketProjection, Page, UserListQuery};
use crate::market::Market;
use crate::user::{Email, User};

/// What can go wrong in any repository. Adapters MUST translate their storage errors into these
/// variants; nothing storage-specific crosses the port.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A uniqueness or reference rule would be broken (an email already registered, a market whose
    /// creator does not exist). The string names the field (`"email"`, `"creator_id"`), never the
    /// stored value.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The row to change or delete does not exist.
    #[error("not found")]
    NotFound,
    /// The row exists but its `version` is not the one the caller read: someone else changed it.
    #[error("changed by someone else")]
    Stale,
    /// The store could not be reached or failed; the operation had no effect.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
}

/// Users by id and by email.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user.
    ///
    /// # Errors
    /// - [`RepositoryError::Conflict`]`("email")` when the email is registered already (compared
    ///   case-insensitively: [`Email`] is normalised);
    /// - [`RepositoryError::Conflict`]`("id")` when the email is free but the id exists;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn insert(&self, user: &User) -> Result<(), RepositoryError>;

    /// The user with this id, if any.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError>;

    /// The user with this email, if any.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError>;

    /// The users with these ids, in one query, in no particular order; unknown ids are left out.
    /// At most [`MAX_BATCH`] ids.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find_many(&self, ids: &[UserId]) -> Result<Vec<User>, RepositoryError>;

    /// Replaces the stored user with `user`, stored exactly as given. Callers that must not lose a
    /// concurrent change hold the row with [`crate::ports::Transaction::lock_user`].
    ///
    /// # Errors
    /// - [`RepositoryError::NotFound`] when no user has this id;
    /// - [`RepositoryError::Conflict`]`("email")` when the new email belongs to another user;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn update(&self, user: &User) -> Result<(), RepositoryError>;

    /// One page of the users matching `query.filter`, oldest first (ties by id), and the total
    /// number of matches.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn list(&self, query: &UserListQuery) -> Result<Page<User>, RepositoryError>;

    /// Deletes the user and their sessions.
    ///
    /// # Errors
    /// - [`RepositoryError::NotFound`] when no user has this id;
    /// - [`RepositoryError::Conflict`]`("markets")` or `("positions")` when markets or positions
    ///   refer to the user (history is kept: disable the account instead);
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn delete(&self, id: UserId) -> Result<(), RepositoryError>;
}

/// The most ids a `find_many` accepts (one list page at the most, with room to spare).
pub const MAX_BATCH: usize = 1_000;

/// Markets: one by id, lists, and changes guarded by optimistic concurrency.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MarketRepository: Send + Sync {
    /// Stores a new market.
    ///
    /// # Errors
    /// - [`RepositoryError::Conflict`]`("id")` when the id exists already;
    /// - [`RepositoryError::Conflict`]`("creator_id")` when no user has `market.creator_id`;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn insert(&self, market: &Market) -> Result<(), RepositoryError>;

    /// The market with this id, if any.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find_by_id(&self, id: MarketId) -> Result<Option<Market>, RepositoryError>;

    /// The markets with these ids, in one query, in no particular order; unknown ids are left
    /// out. At most [`MAX_BATCH`] ids.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn find_many(&self, ids: &[MarketId]) -> Result<Vec<Market>, RepositoryError>;

    /// One page of the markets matching `query.filter`, in `query.sort` order with ties broken by
    /// id ascending, holding only `query.fields`, and the total number of matches.
    ///
    /// `name` sorts by the bytes of the UTF-8 text (binary collation) on every adapter; the text
    /// filter folds ASCII letters only, and `volume` is `yes_volume + no_volume`.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store fails.
    async fn list(
        &self,
        query: &MarketListQuery,
    ) -> Result<Page<MarketProjection>, RepositoryError>;

    /// Replaces the stored market with `market`, stored exactly as given (its `version` included:
    /// use cases bump it through [`Market::apply`]), if the stored `version` is still
    /// `expected_version` (the one the caller read).
    ///
    /// # Errors
    /// - [`RepositoryError::NotFound`] when no market has this id;
    /// - [`RepositoryError::Stale`] when its version is no longer `expected_version`;
    /// - [`RepositoryError::Conflict`]`("creator_id")` when no user has `market.creator_id`;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn update(&self, market: &Market, expected_version: i64) -> Result<(), RepositoryError>;

    /// Deletes the market if its stored `version` is still `expected_version`. A market that
    /// positions refer to is never deleted (they hold money).
    ///
    /// # Errors
    /// - [`RepositoryError::NotFound`] when no market has this id;
    /// - [`RepositoryError::Stale`] when its version is no longer `expected_version`;
    /// - [`RepositoryError::Conflict`]`("positions")` when positions refer to it;
    /// - [`RepositoryError::Unavailable`] when the store fails.
    async fn delete(&self, id: MarketId, expected_version: i64) -> Result<(), RepositoryError>;
}
