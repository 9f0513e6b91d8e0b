//! List markets: filtered, sorted, paginated, with only the requested fields.

use domain::Page;
use domain::listing::{MarketListQuery, MarketProjection};

use crate::{Unavailable, UseCases};

/// Why a list could not be returned.
#[derive(Debug, thiserror::Error)]
pub enum ListMarketsError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// One page of markets. The query is already validated by construction (its types).
    ///
    /// # Errors
    /// [`ListMarketsError::Unavailable`] on storage failure.
    pub async fn list_markets(
        &self,
        query: &MarketListQuery,
    ) -> Result<Page<MarketProjection>, ListMarketsError> {
        Ok(self
            .deps()
            .markets
            .list(query)
            .await
            .map_err(Unavailable::from)?)
    }
}
