//! List positions of a market (anyone) or of a user (that user or an admin), optionally with their
//! markets loaded in one batch.

use std::collections::BTreeSet;

use domain::access::AccessDenied;
use domain::listing::PositionListQuery;
use domain::{Actor, Market, MarketId, Page, Permission, Position, UserId};

use crate::{Unavailable, UseCases};

/// A page of positions and, when asked for, their markets.
#[derive(Debug, Clone)]
pub struct PositionList {
    pub page: Page<Position>,
    /// The markets of the positions on the page (each once), when `include=market`.
    pub markets: Vec<Market>,
}

/// Why a list could not be returned.
#[derive(Debug, thiserror::Error)]
pub enum ListPositionsError {
    #[error("no such market")]
    MarketNotFound,
    /// An admin asked for the positions of an account that does not exist (or was deleted).
    #[error("no such user")]
    UserNotFound,
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// The positions on one market.
    ///
    /// # Errors
    /// [`ListPositionsError::MarketNotFound`] or [`ListPositionsError::Unavailable`].
    pub async fn list_market_positions(
        &self,
        market_id: MarketId,
        query: PositionListQuery,
        include_markets: bool,
        viewer: Option<&Actor>,
    ) -> Result<PositionList, ListPositionsError> {
        if self
            .deps()
            .markets
            .find_by_id(market_id)
            .await
            .map_err(Unavailable::from)?
            .is_none()
        {
            return Err(ListPositionsError::MarketNotFound);
        }
        let mut query = query;
        query.filter.market_id = Some(market_id);
        self.list_positions(&query, include_markets, viewer).await
    }

    /// The positions of one user: only that user or an admin may see them.
    ///
    /// # Errors
    /// [`ListPositionsError::Forbidden`] or [`ListPositionsError::Unavailable`].
    pub async fn list_user_positions(
        &self,
        actor: &Actor,
        user_id: UserId,
        query: PositionListQuery,
        include_markets: bool,
    ) -> Result<PositionList, ListPositionsError> {
        if actor.user_id != user_id {
            actor.require(Permission::Admin)?;
            // The actor's own account exists (its session was just checked); another one may not.
            if self
                .deps()
                .users
                .find_by_id(user_id)
                .await
                .map_err(Unavailable::from)?
                .is_none()
            {
                return Err(ListPositionsError::UserNotFound);
            }
        }
        let mut query = query;
        query.filter.user_id = Some(user_id);
        self.list_positions(&query, include_markets, Some(actor))
            .await
    }

    async fn list_positions(
        &self,
        query: &PositionListQuery,
        include_markets: bool,
        viewer: Option<&Actor>,
    ) -> Result<PositionList, ListPositionsError> {
        let deps = self.deps();
        let source = if self.needs_primary(viewer) {
            &deps.positions
        } else {
            &deps.position_reads
        };
        let page = source.list(query).await.map_err(Unavailable::from)?;
        let markets = if include_markets {
            let ids: Vec<_> = page
                .items
                .iter()
                .map(|p| p.market_id)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if ids.is_empty() {
                Vec::new()
            } else {
                deps.markets
                    .find_many(&ids)
                    .await
                    .map_err(Unavailable::from)?
            }
        } else {
            Vec::new()
        };
        Ok(PositionList { page, markets })
    }
}
