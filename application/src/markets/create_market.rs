//! Create market: anyone with the `write` permission opens a new market.

use domain::access::AccessDenied;
use domain::market::{MarketDraft, MarketError};
use domain::ports::RepositoryError;
use domain::{Actor, Market, MarketId, Permission};

use crate::{Unavailable, UseCases};

/// Why a market could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateMarketError {
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    /// A rule of the market itself, such as an end date in the past.
    #[error(transparent)]
    Rule(#[from] MarketError),
    /// The actor's account no longer exists (a token outlived its user).
    #[error("the account behind this token is gone")]
    CreatorGone,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Opens a market owned by `actor`.
    ///
    /// # Errors
    /// [`CreateMarketError::Forbidden`] without the `write` permission, [`CreateMarketError::Rule`]
    /// when the draft breaks a market rule, [`CreateMarketError::Unavailable`] on storage failure.
    pub async fn create_market(
        &self,
        actor: &Actor,
        draft: MarketDraft,
    ) -> Result<Market, CreateMarketError> {
        actor.require(Permission::Write)?;
        let deps = self.deps();
        let market = Market::open(
            MarketId::from_uuid(deps.ids.next_id()),
            draft,
            actor.user_id,
            deps.clock.now(),
        )?;
        match deps.markets.insert(&market).await {
            Ok(()) => {}
            Err(RepositoryError::Conflict("creator_id")) => {
                return Err(CreateMarketError::CreatorGone);
            }
            Err(other) => return Err(Unavailable::from(other).into()),
        }
        tracing::info!(market_id = %market.id, creator_id = %actor.user_id, "market created");
        Ok(market)
    }
}
