//! Use cases of the prediction-markets service, written against the domain's ports only.
//!
//! [`UseCases`] holds the ports ([`Deps`]); each use case is a method defined in its own file,
//! grouped by aggregate (`users/`, `markets/`), with its own error enum.

pub mod markets;
pub mod users;

use std::sync::Arc;

use domain::Amount;
use domain::ports::{
    BoxError, Clock, IdGenerator, MarketRepository, PasswordHasher, RepositoryError, TokenIssuer,
    UserRepository,
};

/// Every port the use cases need, chosen by the composition root.
#[derive(Clone)]
pub struct Deps {
    pub users: Arc<dyn UserRepository>,
    pub markets: Arc<dyn MarketRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: Arc<dyn TokenIssuer>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
}

/// Business settings that are configuration rather than code.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Credits a new user starts with.
    pub starting_balance: Amount,
    /// How often a change without `If-Match` is re-read and re-applied when a concurrent change
    /// wins the race, before giving up with a conflict.
    pub optimistic_retries: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            starting_balance: Amount::from_cents(100_000).unwrap_or(Amount::ZERO),
            optimistic_retries: 3,
        }
    }
}

/// The application: ports plus settings. Cheap to clone.
#[derive(Clone)]
pub struct UseCases {
    deps: Deps,
    settings: Settings,
}

impl UseCases {
    #[must_use]
    pub fn new(deps: Deps, settings: Settings) -> Self {
        Self { deps, settings }
    }

    /// The ports, for adapters that need one directly (e.g. the token check in an extractor).
    #[must_use]
    pub fn deps(&self) -> &Deps {
        &self.deps
    }
}

/// A dependency failed; the use case had no effect. The cause is for logs only.
#[derive(Debug, thiserror::Error)]
#[error("a dependency failed")]
pub struct Unavailable(#[source] pub BoxError);

impl Unavailable {
    /// Wraps any infrastructure error.
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

impl From<RepositoryError> for Unavailable {
    fn from(error: RepositoryError) -> Self {
        Self::from_error(error)
    }
}
