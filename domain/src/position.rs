//! Positions: a user's stake on one side of a market, and the rule that opens one.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{MarketId, PositionId, UserId};
use crate::market::{Market, MarketStatus, Outcome};
use crate::money::{Amount, AmountError};
use crate::user::User;

/// The side a position backs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Yes,
    No,
}

impl Side {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
        }
    }

    /// # Errors
    /// [`UnknownSide`] for anything but `yes` or `no`.
    pub fn parse(text: &str) -> Result<Self, UnknownSide> {
        match text {
            "yes" => Ok(Self::Yes),
            "no" => Ok(Self::No),
            _ => Err(UnknownSide),
        }
    }

    /// Whether this side won a market resolved with `outcome`.
    #[must_use]
    pub const fn wins(self, outcome: Outcome) -> bool {
        matches!(
            (self, outcome),
            (Self::Yes, Outcome::Yes) | (Self::No, Outcome::No)
        )
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not `yes` or `no`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be \"yes\" or \"no\"")]
pub struct UnknownSide;

/// Why a text is not a [`Stake`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakeError {
    #[error(transparent)]
    Amount(#[from] AmountError),
    #[error("must be between {min} and {max}")]
    OutOfRange { min: Amount, max: Amount },
}

/// The amount of one position: between [`Stake::MIN`] and [`Stake::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stake(Amount);

impl Stake {
    /// One credit: smaller stakes are dust.
    pub const MIN: Amount = match Amount::from_cents(100) {
        Some(amount) => amount,
        None => Amount::ZERO,
    };
    /// One hundred thousand credits per position.
    pub const MAX: Amount = match Amount::from_cents(10_000_000) {
        Some(amount) => amount,
        None => Amount::ZERO,
    };

    /// # Errors
    /// [`StakeError`] when the text is not an amount or is outside `MIN..=MAX`.
    pub fn parse(text: &str) -> Result<Self, StakeError> {
        Self::new(Amount::parse(text)?)
    }

    /// # Errors
    /// [`StakeError::OutOfRange`] outside `MIN..=MAX`.
    pub fn new(amount: Amount) -> Result<Self, StakeError> {
        if (Self::MIN..=Self::MAX).contains(&amount) {
            Ok(Self(amount))
        } else {
            Err(StakeError::OutOfRange {
                min: Self::MIN,
                max: Self::MAX,
            })
        }
    }

    #[must_use]
    pub const fn amount(self) -> Amount {
        self.0
    }
}

/// A stake on one side of a market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub id: PositionId,
    pub market_id: MarketId,
    pub user_id: UserId,
    pub side: Side,
    pub amount: Amount,
    /// What the position paid out when its market was settled; `None` until then.
    pub payout: Option<Amount>,
    pub created_at: DateTime<Utc>,
}

/// A rule that stops a position from opening.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("the market is {0}, not active")]
    MarketNotActive(MarketStatus),
    #[error("the market has ended")]
    MarketEnded,
    #[error("the balance of {available} does not cover the stake")]
    InsufficientBalance { available: Amount },
    #[error("the market's volume would exceed the largest amount")]
    VolumeOverflow,
}

/// Opens a position: debits `user`, adds the stake to `market`'s side (bumping its version) and
/// returns the position. On error neither is changed.
///
/// # Errors
/// [`PositionError`] when the market is not active or has ended, the balance does not cover the
/// stake, or the volume would overflow.
pub fn open_position(
    id: PositionId,
    user: &mut User,
    market: &mut Market,
    side: Side,
    stake: Stake,
    now: DateTime<Utc>,
) -> Result<Position, PositionError> {
    if market.status != MarketStatus::Active {
        return Err(PositionError::MarketNotActive(market.status));
    }
    if now >= market.end_date {
        return Err(PositionError::MarketEnded);
    }
    let amount = stake.amount();
    let balance = user
        .balance
        .checked_sub(amount)
        .ok_or(PositionError::InsufficientBalance {
            available: user.balance,
        })?;
    let (yes, no) = match side {
        Side::Yes => (
            market.yes_volume.checked_add(amount),
            Some(market.no_volume),
        ),
        Side::No => (
            Some(market.yes_volume),
            market.no_volume.checked_add(amount),
        ),
    };
    let (Some(yes), Some(no)) = (yes, no) else {
        return Err(PositionError::VolumeOverflow);
    };
    if yes.checked_add(no).is_none() {
        return Err(PositionError::VolumeOverflow);
    }
    user.balance = balance;
    user.updated_at = now;
    market.yes_volume = yes;
    market.no_volume = no;
    market.version += 1;
    market.updated_at = now;
    Ok(Position {
        id,
        market_id: market.id,
        user_id: user.id,
        side,
        amount,
        payout: None,
        created_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{
        Category, MarketChanges, MarketDescription, MarketDraft, MarketName, StatusChange,
    };
    use crate::user::{DisplayName, Email, PasswordHash, Role};
    use chrono::Duration;
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn cents(cents: i64) -> Amount {
        Amount::from_cents(cents).unwrap_or_default()
    }

    fn user(balance: i64) -> User {
        User {
            id: UserId::from_uuid(Uuid::now_v7()),
            email: Email::parse("p@example.com").unwrap_or_else(|e| panic!("{e}")),
            name: DisplayName::parse("P").unwrap_or_else(|e| panic!("{e}")),
            password_hash: PasswordHash::from_phc(String::new()),
            role: Role::User,
            balance: cents(balance),
            disabled: false,
            created_at: now(),
            updated_at: now(),
        }
    }

    fn market() -> Market {
        Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            MarketDraft {
                name: MarketName::parse("Position market").unwrap_or_else(|e| panic!("{e}")),
                description: MarketDescription::default(),
                category: Category::parse("test").unwrap_or_else(|e| panic!("{e}")),
                end_date: now() + Duration::days(1),
            },
            UserId::from_uuid(Uuid::now_v7()),
            now(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn stake(cents_: i64) -> Stake {
        Stake::new(cents(cents_)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn id() -> PositionId {
        PositionId::from_uuid(Uuid::now_v7())
    }

    #[test]
    fn opening_a_position_moves_the_stake_from_the_balance_to_the_market() {
        let (mut user, mut market) = (user(10_000), market());
        let position = open_position(id(), &mut user, &mut market, Side::No, stake(2_500), now())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(user.balance, cents(7_500));
        assert_eq!(market.no_volume, cents(2_500));
        assert_eq!(market.yes_volume, Amount::ZERO);
        assert_eq!(market.volume(), cents(2_500));
        assert_eq!(market.version, 2);
        assert_eq!(position.amount, cents(2_500));
        assert_eq!((position.user_id, position.market_id), (user.id, market.id));
    }

    #[test]
    fn a_stake_above_the_balance_is_refused_and_changes_nothing() {
        let (mut user, mut market) = (user(100), market());
        let (before_user, before_market) = (user.clone(), market.clone());
        assert_eq!(
            open_position(id(), &mut user, &mut market, Side::Yes, stake(101), now()),
            Err(PositionError::InsufficientBalance {
                available: cents(100)
            })
        );
        assert_eq!((user, market), (before_user, before_market));
    }

    #[test]
    fn only_active_markets_before_their_end_take_positions() {
        let mut user = user(10_000);
        let mut ended = market();
        let end = ended.end_date;
        assert_eq!(
            open_position(id(), &mut user, &mut ended, Side::Yes, stake(100), end),
            Err(PositionError::MarketEnded)
        );
        for (status, outcome) in [
            (MarketStatus::Closed, None),
            (MarketStatus::Resolved, Some(Outcome::Yes)),
            (MarketStatus::Cancelled, None),
        ] {
            let mut market = market();
            market
                .apply(
                    MarketChanges {
                        status: Some(StatusChange { status, outcome }),
                        ..MarketChanges::default()
                    },
                    now(),
                )
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                open_position(id(), &mut user, &mut market, Side::Yes, stake(100), now()),
                Err(PositionError::MarketNotActive(status))
            );
        }
    }

    #[test]
    fn stakes_are_bounded() {
        assert!(Stake::parse("0.99").is_err());
        assert!(Stake::parse("1.00").is_ok());
        assert!(Stake::parse("100000.00").is_ok());
        assert!(matches!(
            Stake::parse("100000.01"),
            Err(StakeError::OutOfRange { .. })
        ));
        assert!(matches!(Stake::parse("1.001"), Err(StakeError::Amount(_))));
    }

    #[test]
    fn a_side_wins_when_it_matches_the_outcome() {
        assert!(Side::Yes.wins(Outcome::Yes));
        assert!(!Side::Yes.wins(Outcome::No));
        assert!(Side::No.wins(Outcome::No));
    }
}
