//! Get market: one market by id, for anyone.

use domain::{Market, MarketId};

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
    /// The market with this id.
    ///
    /// # Errors
    /// [`GetMarketError::NotFound`] or [`GetMarketError::Unavailable`].
    pub async fn get_market(&self, id: MarketId) -> Result<Market, GetMarketError> {
        self.deps()
            .markets
            .find_by_id(id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(GetMarketError::NotFound)
    }
}
