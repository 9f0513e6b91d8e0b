//! List markets: filtered, sorted, paginated, with only the requested fields, and optionally their
//! creators loaded in one batch.

use std::collections::BTreeSet;

use domain::listing::{MarketField, MarketListQuery, MarketProjection};
use domain::{Actor, Page, User};

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
    /// One page of markets, read from the replica unless `viewer` wrote recently (then from the
    /// primary, so that they see their own writes). With `include_creators`, the creators of the
    /// page are loaded with one more query, whatever the page size.
    ///
    /// # Errors
    /// [`ListMarketsError::Unavailable`] on storage failure.
    pub async fn list_markets(
        &self,
        query: &MarketListQuery,
        include_creators: bool,
        viewer: Option<&Actor>,
    ) -> Result<MarketList, ListMarketsError> {
        let deps = self.deps();
        let source = if self.needs_primary(viewer) {
            &deps.markets
        } else {
            &deps.market_reads
        };
        let mut query = query.clone();
        if include_creators {
            query.fields = query.fields.with(MarketField::CreatorId);
        }
        let page = source.list(&query).await.map_err(Unavailable::from)?;
        let creators = if include_creators {
            let ids: BTreeSet<_> = page.items.iter().filter_map(|m| m.creator_id).collect();
            let ids: Vec<_> = ids.into_iter().collect();
            if ids.is_empty() {
                Vec::new()
            } else {
                deps.users
                    .find_many(&ids)
                    .await
                    .map_err(Unavailable::from)?
            }
        } else {
            Vec::new()
        };
        Ok(MarketList { page, creators })
    }
}
