//! List markets: filtered, sorted, paginated, with only the requested fields, and optionally their
//! creators loaded in one batch; rendered, and shared through the cache when caching is on.

use std::collections::BTreeSet;

use domain::listing::{MarketField, MarketListQuery, MarketProjection};
use domain::ports::{MarketRepository, RepositoryError};
use domain::{Actor, Page, User};

use crate::caching::Rendered;
use crate::{Unavailable, UseCases};

/// A page of markets and, when asked for, the users who created them.
#[derive(Debug, Clone)]
pub struct MarketList {
    pub page: Page<MarketProjection>,
    /// The creators of the markets on the page (each once), when `include=creator`.
    pub creators: Vec<User>,
}

/// Why a list could not be returned.
#[derive(Debug, thiserror::Error)]
pub enum ListMarketsError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// One page of markets, rendered. With `include_creators`, the creators of the page are loaded
    /// with one more query, whatever the page size.
    ///
    /// A page shared through the cache is built from the primary (a replica's lag would be
    /// shared with everyone until the next write). Without the cache the page is read from the
    /// replica, unless `viewer` wrote recently (then from the primary, so that they see their own
    /// writes).
    ///
    /// # Errors
    /// [`ListMarketsError::Unavailable`] on storage failure.
    pub async fn list_markets(
        &self,
        query: &MarketListQuery,
        include_creators: bool,
        viewer: Option<&Actor>,
    ) -> Result<Rendered, ListMarketsError> {
        let deps = self.deps();
        let routed = if self.needs_primary(viewer) {
            &deps.markets
        } else {
            &deps.market_reads
        };
        let rendered = deps
            .cached_markets
            .list(
                query,
                include_creators,
                || self.load_page(deps.markets.as_ref(), query, include_creators),
                || self.load_page(routed.as_ref(), query, include_creators),
            )
            .await
            .map_err(Unavailable::from)?;
        Ok(rendered)
    }

    async fn load_page(
        &self,
        source: &dyn MarketRepository,
        query: &MarketListQuery,
        include_creators: bool,
    ) -> Result<MarketList, RepositoryError> {
        let mut query = query.clone();
        if include_creators {
            query.fields = query.fields.with(MarketField::CreatorId);
        }
        let page = source.list(&query).await?;
        let creators = if include_creators {
            let ids: BTreeSet<_> = page.items.iter().filter_map(|m| m.creator_id).collect();
            let ids: Vec<_> = ids.into_iter().collect();
            if ids.is_empty() {
                Vec::new()
            } else {
                self.deps().users.find_many(&ids).await?
            }
        } else {
            Vec::new()
        };
        Ok(MarketList { page, creators })
    }
}
