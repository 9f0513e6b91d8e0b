//! Settlement of a finished market: what each position pays out (parimutuel) and crediting it.

use chrono::{DateTime, Utc};

use crate::market::{Market, MarketStatus};
use crate::money::Amount;
use crate::position::Position;
use crate::user::User;

/// Why a position cannot be settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    /// Only resolved and cancelled markets are settled.
    #[error("the market is {0}: only resolved or cancelled markets are settled")]
    NotFinished(MarketStatus),
    /// The position belongs to another market.
    #[error("the position is not on this market")]
    WrongMarket,
    /// The position was paid already.
    #[error("the position is settled already")]
    AlreadySettled,
    /// The credit would take the balance past the largest amount.
    #[error("the balance would exceed the largest amount")]
    BalanceOverflow,
}

/// What `position` pays out when `market` is settled:
///
/// - a **resolved** market shares its whole pool (both sides' volume) among the positions on the
///   winning side, in proportion to their stakes, rounded down to the cent (the few cents left by
///   rounding stay with the house); losing positions pay nothing;
/// - when nobody took the winning side, or the market was **cancelled**, every stake is refunded.
///
/// The sum over a market's positions is never more than its pool.
///
/// # Errors
/// [`SettlementError::NotFinished`] for a market that is neither resolved nor cancelled, and
/// [`SettlementError::WrongMarket`] for a position of another market.
pub fn payout(market: &Market, position: &Position) -> Result<Amount, SettlementError> {
    if position.market_id != market.id {
        return Err(SettlementError::WrongMarket);
    }
    let outcome = match (market.status, market.outcome) {
        (MarketStatus::Resolved, Some(outcome)) => outcome,
        (MarketStatus::Cancelled, _) => return Ok(position.amount),
        (status, _) => return Err(SettlementError::NotFinished(status)),
    };
    let winning_volume = match outcome {
        crate::market::Outcome::Yes => market.yes_volume,
        crate::market::Outcome::No => market.no_volume,
    };
    if winning_volume == Amount::ZERO {
        return Ok(position.amount);
    }
    if !position.side.wins(outcome) {
        return Ok(Amount::ZERO);
    }
    let share = i128::from(position.amount.cents()) * i128::from(market.volume().cents())
        / i128::from(winning_volume.cents());
    // A stake is at most the winning volume, so the share is at most the pool: it fits.
    Ok(i64::try_from(share)
        .ok()
        .and_then(Amount::from_cents)
        .unwrap_or(Amount::MAX))
}

/// Settles `position` for `user` (its holder): computes the [`payout`], credits it to the
/// balance and marks the position paid. On error neither is changed.
///
/// # Errors
/// [`SettlementError`] when the market is not finished, the position is not on it or is paid
/// already, or the balance would overflow.
pub fn settle_position(
    market: &Market,
    position: &mut Position,
    user: &mut User,
    now: DateTime<Utc>,
) -> Result<Amount, SettlementError> {
    if position.payout.is_some() {
        return Err(SettlementError::AlreadySettled);
    }
    let paid = payout(market, position)?;
    let balance = user
        .balance
        .checked_add(paid)
        .ok_or(SettlementError::BalanceOverflow)?;
    if paid > Amount::ZERO {
        user.balance = balance;
        user.updated_at = now;
    }
    position.payout = Some(paid);
    Ok(paid)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use uuid::Uuid;

    use super::*;
    use crate::id::{MarketId, PositionId, UserId};
    use crate::market::{Category, MarketDescription, MarketDraft, MarketName, Outcome};
    use crate::position::Side;
    use crate::user::{DisplayName, Email, PasswordHash, Role};

    fn cents(value: i64) -> Amount {
        Amount::from_cents(value).unwrap_or_else(|| panic!("{value} cents"))
    }

    fn market(status: MarketStatus, outcome: Option<Outcome>, yes: i64, no: i64) -> Market {
        let now = Utc::now();
        let mut market = Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            MarketDraft {
                name: MarketName::parse("Settled market").unwrap_or_else(|e| panic!("{e}")),
                description: MarketDescription::default(),
                category: Category::parse("test").unwrap_or_else(|e| panic!("{e}")),
                end_date: now + Duration::days(1),
            },
            UserId::from_uuid(Uuid::now_v7()),
            now,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        market.status = status;
        market.outcome = outcome;
        market.yes_volume = cents(yes);
        market.no_volume = cents(no);
        market
    }

    fn position(market: &Market, side: Side, amount: i64) -> Position {
        Position {
            id: PositionId::from_uuid(Uuid::now_v7()),
            market_id: market.id,
            user_id: UserId::from_uuid(Uuid::now_v7()),
            side,
            amount: cents(amount),
            payout: None,
            created_at: Utc::now(),
        }
    }

    fn user(balance: i64) -> User {
        let now = Utc::now();
        User {
            id: UserId::from_uuid(Uuid::now_v7()),
            email: Email::parse("holder@example.com").unwrap_or_else(|e| panic!("{e}")),
            name: DisplayName::parse("Holder").unwrap_or_else(|e| panic!("{e}")),
            password_hash: PasswordHash::from_phc(String::new()),
            role: Role::User,
            balance: cents(balance),
            disabled: false,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn winners_share_the_pool_in_proportion_to_their_stakes_rounded_down() {
        // 300 on YES (100 + 200), 700 on NO; YES wins a pool of 1,000.
        let market = market(MarketStatus::Resolved, Some(Outcome::Yes), 300, 700);
        let small = payout(&market, &position(&market, Side::Yes, 100));
        let large = payout(&market, &position(&market, Side::Yes, 200));
        let loser = payout(&market, &position(&market, Side::No, 700));
        assert_eq!(small, Ok(cents(333)));
        assert_eq!(large, Ok(cents(666)));
        assert_eq!(loser, Ok(Amount::ZERO));
    }

    #[test]
    fn nobody_on_the_winning_side_or_a_cancelled_market_refunds_every_stake() {
        let unanimous_losers = market(MarketStatus::Resolved, Some(Outcome::Yes), 0, 500);
        let cancelled = market(MarketStatus::Cancelled, None, 300, 200);
        assert_eq!(
            payout(
                &unanimous_losers,
                &position(&unanimous_losers, Side::No, 500)
            ),
            Ok(cents(500))
        );
        assert_eq!(
            payout(&cancelled, &position(&cancelled, Side::Yes, 300)),
            Ok(cents(300))
        );
    }

    #[test]
    fn an_open_market_or_another_markets_position_is_not_settled() {
        let active = market(MarketStatus::Active, None, 100, 100);
        let closed = market(MarketStatus::Closed, None, 100, 100);
        assert_eq!(
            payout(&active, &position(&active, Side::Yes, 100)),
            Err(SettlementError::NotFinished(MarketStatus::Active))
        );
        assert_eq!(
            payout(&closed, &position(&active, Side::Yes, 100)),
            Err(SettlementError::WrongMarket)
        );
    }

    #[test]
    fn settling_credits_the_holder_once() {
        let market = market(MarketStatus::Resolved, Some(Outcome::No), 100, 100);
        let mut position = position(&market, Side::No, 100);
        let mut holder = user(50);
        let now = Utc::now();
        assert_eq!(
            settle_position(&market, &mut position, &mut holder, now),
            Ok(cents(200))
        );
        assert_eq!(holder.balance, cents(250));
        assert_eq!(position.payout, Some(cents(200)));
        assert_eq!(
            settle_position(&market, &mut position, &mut holder, now),
            Err(SettlementError::AlreadySettled)
        );
        assert_eq!(
            holder.balance,
            cents(250),
            "a second settlement pays nothing"
        );
    }

    #[test]
    fn a_credit_past_the_largest_amount_changes_nothing() {
        let market = market(MarketStatus::Cancelled, None, 100, 0);
        let mut position = position(&market, Side::Yes, 100);
        let mut holder = user(0);
        holder.balance = Amount::MAX;
        assert_eq!(
            settle_position(&market, &mut position, &mut holder, Utc::now()),
            Err(SettlementError::BalanceOverflow)
        );
        assert_eq!(position.payout, None);
    }
}
