//! Get market: one market by id, for anyone, rendered (from the cache when caching is on).

use domain::MarketId;

use crate::caching::Rendered;
use crate::{Unavailable, UseCases};

/// Why a market could not be returned.
#[derive(Debug, thiserror::Error)]
pub enum GetMarketError {
    #[error("no such market")]
    NotFound,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// The market with this id, as the client receives it, with its version.
    ///
    /// # Errors
    /// [`GetMarketError::NotFound`] or [`GetMarketError::Unavailable`].
    pub async fn get_market(&self, id: MarketId) -> Result<Rendered, GetMarketError> {
        self.deps()
            .cached_markets
            .find_by_id(id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(GetMarketError::NotFound)
    }
}
