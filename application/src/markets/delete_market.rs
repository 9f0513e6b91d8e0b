//! Delete market: by its owner while nobody has staked on it, or by an admin; never a market with
//! positions (cancel it instead).

use domain::access::AccessDenied;
use domain::ports::RepositoryError;
use domain::{Actor, DomainEvent, MarketAction, MarketId};

use crate::markets::Precondition;
use crate::{Unavailable, UseCases};

/// Why a market could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteMarketError {
    #[error("no such market")]
    NotFound,
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    #[error("the market has changed since version {expected}")]
    PreconditionFailed { expected: i64 },
    /// Positions hold money on it: it can be cancelled, not deleted.
    #[error("a market with positions cannot be deleted; cancel it instead")]
    HasPositions,
    #[error("the market is being changed concurrently; try again")]
    Contended,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Deletes a market the actor may delete, under a row lock, and records `MarketDeleted`.
    ///
    /// # Errors
    /// See [`DeleteMarketError`].
    pub async fn delete_market(
        &self,
        actor: &Actor,
        id: MarketId,
        precondition: Precondition,
    ) -> Result<(), DeleteMarketError> {
        let deps = self.deps();
        let transaction = deps.unit_of_work.begin().await.map_err(Unavailable::from)?;
        let market = transaction
            .lock_market(id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(DeleteMarketError::NotFound)?;
        actor.may(MarketAction::Delete, &market)?;
        if let Precondition::Version(expected) = precondition
            && !precondition.holds_for(market.version)
        {
            return Err(DeleteMarketError::PreconditionFailed { expected });
        }
        if market.has_positions() {
            return Err(DeleteMarketError::HasPositions);
        }
        match transaction.markets().delete(id, market.version).await {
            Ok(()) => {}
            Err(RepositoryError::NotFound) => return Err(DeleteMarketError::NotFound),
            Err(RepositoryError::Stale) => return Err(DeleteMarketError::Contended),
            Err(RepositoryError::Conflict("positions")) => {
                return Err(DeleteMarketError::HasPositions);
            }
            Err(other) => return Err(Unavailable::from(other).into()),
        }
        transaction
            .outbox()
            .record(&self.event(DomainEvent::MarketDeleted { market_id: id }))
            .await
            .map_err(Unavailable::from)?;
        transaction.commit().await.map_err(Unavailable::from)?;
        self.wrote(actor);
        deps.cached_markets.market_deleted(id, market.version).await;
        tracing::info!(market_id = %id, by = %actor.user_id, "market deleted");
        Ok(())
    }
}
