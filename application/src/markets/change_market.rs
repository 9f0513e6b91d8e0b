//! Replace or update a market, under the market policy and optimistic concurrency.

use domain::access::AccessDenied;
use domain::market::{MarketChanges, MarketDraft, MarketError};
use domain::ports::RepositoryError;
use domain::{Actor, Market, MarketAction, MarketId};

use crate::{Unavailable, UseCases};

/// What the client believes the current version is (`If-Match`), if it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// No `If-Match`: a change that loses a race is re-read and re-applied.
    #[default]
    None,
    /// `If-Match`: the change applies only to this version.
    Version(i64),
}

/// Why a market could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeMarketError {
    #[error("no such market")]
    NotFound,
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    /// `If-Match` named a version that is not the current one.
    #[error("the market has changed since version {expected}")]
    PreconditionFailed { expected: i64 },
    /// Concurrent changes kept winning the race; the client may try again.
    #[error("the market is being changed concurrently; try again")]
    Contended,
    #[error(transparent)]
    Rule(#[from] MarketError),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Replaces what a market says (`PUT`): name, description, category and end date.
    ///
    /// # Errors
    /// See [`ChangeMarketError`].
    pub async fn replace_market(
        &self,
        actor: &Actor,
        id: MarketId,
        draft: MarketDraft,
        precondition: Precondition,
    ) -> Result<Market, ChangeMarketError> {
        self.update_market(
            actor,
            id,
            MarketChanges::replacing_with(draft),
            precondition,
        )
        .await
    }

    /// Applies a partial change (`PATCH`), including moves through the lifecycle.
    ///
    /// Content edits need [`MarketAction::Update`], status changes [`MarketAction::ChangeStatus`];
    /// both are checked against the market as stored. Without a precondition, a lost race is
    /// retried on the fresh version up to the configured number of times.
    ///
    /// # Errors
    /// See [`ChangeMarketError`].
    pub async fn update_market(
        &self,
        actor: &Actor,
        id: MarketId,
        changes: MarketChanges,
        precondition: Precondition,
    ) -> Result<Market, ChangeMarketError> {
        let deps = self.deps();
        for _ in 0..=self.settings.optimistic_retries {
            let mut market = deps
                .markets
                .find_by_id(id)
                .await
                .map_err(Unavailable::from)?
                .ok_or(ChangeMarketError::NotFound)?;
            if changes.edits_content() {
                actor.may(MarketAction::Update, &market)?;
            }
            if changes.status.is_some() {
                actor.may(MarketAction::ChangeStatus, &market)?;
            }
            if let Precondition::Version(expected) = precondition
                && expected != market.version
            {
                return Err(ChangeMarketError::PreconditionFailed { expected });
            }
            let read_version = market.version;
            market.apply(changes.clone(), deps.clock.now())?;
            match deps.markets.update(&market, read_version).await {
                Ok(()) => {
                    tracing::info!(market_id = %id, version = market.version, "market changed");
                    return Ok(market);
                }
                Err(RepositoryError::NotFound) => return Err(ChangeMarketError::NotFound),
                Err(RepositoryError::Stale) => {
                    if let Precondition::Version(expected) = precondition {
                        return Err(ChangeMarketError::PreconditionFailed { expected });
                    }
                }
                Err(other) => return Err(Unavailable::from(other).into()),
            }
        }
        Err(ChangeMarketError::Contended)
    }
}
