//! Delete market: by its owner while nobody has staked on it, or by an admin.

use domain::access::AccessDenied;
use domain::ports::RepositoryError;
use domain::{Actor, MarketAction, MarketId};

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
    #[error("the market is being changed concurrently; try again")]
    Contended,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Deletes a market the actor may delete. The policy is checked against the version that is
    /// deleted: if the market changes in between (say, someone stakes on it), the check runs again.
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
        for _ in 0..=self.settings.optimistic_retries {
            let market = deps
                .markets
                .find_by_id(id)
                .await
                .map_err(Unavailable::from)?
                .ok_or(DeleteMarketError::NotFound)?;
            actor.may(MarketAction::Delete, &market)?;
            if let Precondition::Version(expected) = precondition
                && expected != market.version
            {
                return Err(DeleteMarketError::PreconditionFailed { expected });
            }
            match deps.markets.delete(id, market.version).await {
                Ok(()) => {
                    tracing::info!(market_id = %id, by = %actor.user_id, "market deleted");
                    return Ok(());
                }
                Err(RepositoryError::NotFound) => return Err(DeleteMarketError::NotFound),
                Err(RepositoryError::Stale) => {
                    if let Precondition::Version(expected) = precondition {
                        return Err(DeleteMarketError::PreconditionFailed { expected });
                    }
                }
                Err(other) => return Err(Unavailable::from(other).into()),
            }
        }
        Err(DeleteMarketError::Contended)
    }
}
