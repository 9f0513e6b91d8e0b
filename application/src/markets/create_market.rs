//! Create market: anyone with the `write` permission opens a new market, optionally with their own
//! first position, all in one transaction.

use domain::access::AccessDenied;
use domain::market::{MarketDraft, MarketError};
use domain::ports::RepositoryError;
use domain::position::{PositionError, open_position};
use domain::{Actor, DomainEvent, Market, MarketId, Permission, Position, PositionId, Side, Stake};

use crate::idempotency::{self, IdempotencyError, Idempotent, Replayable};
use crate::{Unavailable, UseCases};

/// A position to open together with the market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialPosition {
    pub side: Side,
    pub stake: Stake,
}

/// A new market and, when asked for, its creator's first position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedMarket {
    pub market: Market,
    pub position: Option<Position>,
}

/// Why a market could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateMarketError {
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    /// A rule of the market itself, such as an end date in the past.
    #[error(transparent)]
    Rule(#[from] MarketError),
    /// The initial position broke a rule (such as the balance); nothing was created.
    #[error(transparent)]
    Position(#[from] PositionError),
    /// The actor's account no longer exists (a token outlived its user).
    #[error("the account behind this token is gone")]
    CreatorGone,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Opens a market owned by `actor` and records `MarketCreated`; with `initial`, also opens the
    /// creator's position (and records `PositionOpened`): all or nothing.
    ///
    /// # Errors
    /// See [`CreateMarketError`].
    pub async fn create_market(
        &self,
        actor: &Actor,
        draft: MarketDraft,
        initial: Option<InitialPosition>,
        idempotency: Option<&Idempotent<'_, CreatedMarket>>,
    ) -> Result<Replayable<CreatedMarket>, CreateMarketError> {
        actor.require(Permission::Write)?;
        self.idempotently(
            idempotency,
            self.create_market_once(actor, draft, initial, idempotency),
        )
        .await
    }

    async fn create_market_once(
        &self,
        actor: &Actor,
        draft: MarketDraft,
        initial: Option<InitialPosition>,
        idempotency: Option<&Idempotent<'_, CreatedMarket>>,
    ) -> Result<CreatedMarket, CreateMarketError> {
        let deps = self.deps();
        let now = deps.clock.now();
        let mut market = Market::open(
            MarketId::from_uuid(deps.ids.next_id()),
            draft,
            actor.user_id,
            now,
        )?;
        let transaction = deps.unit_of_work.begin().await.map_err(Unavailable::from)?;
        let mut creator = transaction
            .lock_user(actor.user_id)
            .await
            .map_err(Unavailable::from)?
            .filter(|user| !user.disabled)
            .ok_or(CreateMarketError::CreatorGone)?;
        let created_event = self.event(DomainEvent::MarketCreated {
            market_id: market.id,
            creator_id: actor.user_id,
        });
        let position = match initial {
            None => None,
            Some(initial) => Some(open_position(
                PositionId::from_uuid(deps.ids.next_id()),
                &mut creator,
                &mut market,
                initial.side,
                initial.stake,
                now,
            )?),
        };
        match transaction.markets().insert(&market).await {
            Ok(()) => {}
            Err(RepositoryError::Conflict("creator_id")) => {
                return Err(CreateMarketError::CreatorGone);
            }
            Err(other) => return Err(Unavailable::from(other).into()),
        }
        transaction
            .outbox()
            .record(&created_event)
            .await
            .map_err(Unavailable::from)?;
        if let Some(position) = &position {
            transaction
                .users()
                .update(&creator)
                .await
                .map_err(Unavailable::from)?;
            transaction
                .positions()
                .insert(position)
                .await
                .map_err(Unavailable::from)?;
            transaction
                .outbox()
                .record(&self.position_opened(position, &market))
                .await
                .map_err(Unavailable::from)?;
        }
        let created = CreatedMarket { market, position };
        idempotency::complete(idempotency, transaction.as_ref(), &created).await?;
        transaction.commit().await.map_err(Unavailable::from)?;
        self.wrote(actor);
        deps.cached_markets.market_changed(&created.market).await;
        tracing::info!(market_id = %created.market.id, creator_id = %actor.user_id, "market created");
        Ok(created)
    }

    /// The `PositionOpened` event of `position` on `market` (as it is after the position).
    pub(crate) fn position_opened(
        &self,
        position: &Position,
        market: &Market,
    ) -> domain::RecordedEvent {
        self.event(DomainEvent::PositionOpened {
            position_id: position.id,
            market_id: market.id,
            user_id: position.user_id,
            side: position.side,
            amount: position.amount,
            yes_volume: market.yes_volume,
            no_volume: market.no_volume,
            version: market.version,
        })
    }
}
