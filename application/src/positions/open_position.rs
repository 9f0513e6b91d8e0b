//! Open position: debit the balance, add to the market's volume, store the position and its
//! event, all in one transaction with both rows locked.

use domain::position::{PositionError, open_position};
use domain::{Actor, MarketId, Permission, Position, PositionId, Side, Stake};

use crate::idempotency::{self, IdempotencyError, Idempotent, Replayable};
use crate::{Unavailable, UseCases};

/// What the caller stakes, on which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionOrder {
    pub side: Side,
    pub stake: Stake,
}

/// Why a position could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenPositionError {
    #[error("no such market")]
    MarketNotFound,
    #[error(transparent)]
    Forbidden(#[from] domain::access::AccessDenied),
    /// The caller's account is gone or disabled.
    #[error("the account behind this token is gone or disabled")]
    AccountGone,
    /// A rule of positions: market not active or ended, balance too low.
    #[error(transparent)]
    Rule(#[from] PositionError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Opens a position for `actor` on `market_id`.
    ///
    /// The user's row is locked before the market's (always in that order, so that concurrent
    /// transactions cannot deadlock); the balance check, the debit, the volume and the position
    /// therefore see and change one consistent state, and 50 concurrent orders can never overdraw
    /// a balance.
    ///
    /// # Errors
    /// See [`OpenPositionError`].
    pub async fn open_position(
        &self,
        actor: &Actor,
        market_id: MarketId,
        order: PositionOrder,
        idempotency: Option<&Idempotent<'_, Position>>,
    ) -> Result<Replayable<Position>, OpenPositionError> {
        actor.require(Permission::Write)?;
        self.idempotently(
            idempotency,
            self.open_position_once(actor, market_id, order, idempotency),
        )
        .await
    }

    async fn open_position_once(
        &self,
        actor: &Actor,
        market_id: MarketId,
        order: PositionOrder,
        idempotency: Option<&Idempotent<'_, Position>>,
    ) -> Result<Position, OpenPositionError> {
        let deps = self.deps();
        let transaction = deps.unit_of_work.begin().await.map_err(Unavailable::from)?;
        let mut user = transaction
            .lock_user(actor.user_id)
            .await
            .map_err(Unavailable::from)?
            .filter(|user| !user.disabled)
            .ok_or(OpenPositionError::AccountGone)?;
        let mut market = transaction
            .lock_market(market_id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(OpenPositionError::MarketNotFound)?;
        let read_version = market.version;
        let position = open_position(
            PositionId::from_uuid(deps.ids.next_id()),
            &mut user,
            &mut market,
            order.side,
            order.stake,
            deps.clock.now(),
        )?;
        transaction
            .users()
            .update(&user)
            .await
            .map_err(Unavailable::from)?;
        transaction
            .markets()
            .update(&market, read_version)
            .await
            .map_err(Unavailable::from)?;
        transaction
            .positions()
            .insert(&position)
            .await
            .map_err(Unavailable::from)?;
        transaction
            .outbox()
            .record(&self.position_opened(&position, &market))
            .await
            .map_err(Unavailable::from)?;
        idempotency::complete(idempotency, transaction.as_ref(), &position).await?;
        transaction.commit().await.map_err(Unavailable::from)?;
        self.wrote(actor);
        deps.cached_markets.market_changed(&market).await;
        tracing::info!(
            position_id = %position.id,
            market_id = %market_id,
            user_id = %actor.user_id,
            amount = %position.amount,
            "position opened"
        );
        Ok(position)
    }
}
