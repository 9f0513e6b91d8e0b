//! Replace or update a market, under the market policy, `If-Match`, and a row lock; the change and
//! its event commit together.

use domain::access::AccessDenied;
use domain::market::{MarketChanges, MarketDraft, MarketError, StatusChange};
use domain::ports::{RepositoryError, Transaction};
use domain::{Actor, DomainEvent, JobId, Market, MarketAction, MarketId};

use super::settle_market::settle_market_job;
use crate::{Unavailable, UseCases};

/// What the client believes the current version is (`If-Match`), if it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// No `If-Match`: the change applies to whatever version is current when the row is locked.
    #[default]
    None,
    /// `If-Match`: the change applies only to this version.
    Version(i64),
}

impl Precondition {
    /// Whether a market at `version` meets the precondition.
    #[must_use]
    pub const fn holds_for(self, version: i64) -> bool {
        match self {
            Self::None => true,
            Self::Version(expected) => expected == version,
        }
    }
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
    /// The stored market changed under the lock (a store that does not honour locks).
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

    /// Applies a partial change (`PATCH`), including moves through the lifecycle, and records
    /// `MarketUpdated` or `MarketStatusChanged` in the same transaction.
    ///
    /// The market is locked for the transaction, so concurrent changes apply one after the other
    /// and none is lost. Content edits need [`MarketAction::Update`], status changes
    /// [`MarketAction::ChangeStatus`], both checked against the locked market.
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
        let transaction = deps.unit_of_work.begin().await.map_err(Unavailable::from)?;
        let mut market = transaction
            .lock_market(id)
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
            && !precondition.holds_for(market.version)
        {
            return Err(ChangeMarketError::PreconditionFailed { expected });
        }
        let read_version = market.version;
        let status_change = changes.status;
        market.apply(changes, deps.clock.now())?;
        self.record_change(transaction.as_ref(), &market, read_version, status_change)
            .await?;
        transaction.commit().await.map_err(Unavailable::from)?;
        self.wrote(actor);
        deps.cached_markets.market_changed(&market).await;
        tracing::info!(market_id = %id, version = market.version, "market changed");
        Ok(market)
    }

    /// Stores `market` (read at `read_version`, then changed) in `transaction` with its event
    /// (`MarketStatusChanged` when `status_change`, else `MarketUpdated`); a move to a final
    /// status (resolved, cancelled) also enqueues the market's settlement, so that the change and
    /// the job that pays for it commit together.
    pub(crate) async fn record_change(
        &self,
        transaction: &dyn Transaction,
        market: &Market,
        read_version: i64,
        status_change: Option<StatusChange>,
    ) -> Result<(), ChangeMarketError> {
        let id = market.id;
        match transaction.markets().update(market, read_version).await {
            Ok(()) => {}
            Err(RepositoryError::NotFound) => return Err(ChangeMarketError::NotFound),
            Err(RepositoryError::Stale) => return Err(ChangeMarketError::Contended),
            Err(other) => return Err(Unavailable::from(other).into()),
        }
        let event = match status_change {
            Some(change) => DomainEvent::MarketStatusChanged {
                market_id: id,
                status: change.status,
                outcome: change.outcome,
                version: market.version,
            },
            None => DomainEvent::MarketUpdated {
                market_id: id,
                version: market.version,
            },
        };
        transaction
            .outbox()
            .record(&self.event(event))
            .await
            .map_err(Unavailable::from)?;
        if status_change.is_some_and(|change| change.status.is_final()) {
            let deps = self.deps();
            let job = settle_market_job(JobId::from_uuid(deps.ids.next_id()), id, deps.clock.now())
                .map_err(Unavailable::from_error)?;
            transaction
                .jobs()
                .enqueue(&job)
                .await
                .map_err(Unavailable::from)?;
        }
        Ok(())
    }
}
