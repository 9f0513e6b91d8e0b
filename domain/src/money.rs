//! `Amount`: a non-negative quantity of credits with exactly two decimal places, stored as cents.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not an [`Amount`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a decimal number such as \"25.00\"")]
    NotADecimal,
    #[error("must have at most two decimal places")]
    TooPrecise,
    #[error("must not be negative")]
    Negative,
    #[error("must be at most {max}")]
    TooLarge { max: Amount },
}

/// A non-negative amount of credits, exact to the cent.
///
/// Held as an integer number of cents so that arithmetic is exact and storage is the same on every
/// database (a `BIGINT`). Written and read as a decimal string with two places: `"25.00"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    /// Zero credits.
    pub const ZERO: Self = Self(0);
    /// The largest amount accepted anywhere: one trillion credits.
    pub const MAX: Self = Self(100_000_000_000_000);

    /// From a number of cents; `None` when negative or above [`Amount::MAX`].
    #[must_use]
    pub const fn from_cents(cents: i64) -> Option<Self> {
        if cents < 0 || cents > Self::MAX.0 {
            None
        } else {
            Some(Self(cents))
        }
    }

    /// The number of cents.
    #[must_use]
    pub const fn cents(self) -> i64 {
        self.0
    }

    /// Parses a decimal string such as `"25"`, `"25.5"` or `"25.00"`.
    ///
    /// # Errors
    /// [`AmountError`] when the text is not a decimal, has more than two places, is negative or is
    /// above [`Amount::MAX`].
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let decimal = Decimal::from_str_exact(text.trim()).map_err(|_| AmountError::NotADecimal)?;
        Self::try_from(decimal)
    }

    /// Sum of two amounts, `None` when it would exceed [`Amount::MAX`].
    #[must_use]
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).and_then(Self::from_cents)
    }

    /// Difference, `None` when it would be negative.
    #[must_use]
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).and_then(Self::from_cents)
    }

    /// As a decimal with two places.
    #[must_use]
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }
}

impl TryFrom<Decimal> for Amount {
    type Error = AmountError;

    fn try_from(decimal: Decimal) -> Result<Self, Self::Error> {
        if decimal.is_sign_negative() && !decimal.is_zero() {
            return Err(AmountError::Negative);
        }
        if decimal.normalize().scale() > 2 {
            return Err(AmountError::TooPrecise);
        }
        let cents = (decimal * Decimal::ONE_HUNDRED).trunc();
        i64::try_from(cents)
            .ok()
            .and_then(Self::from_cents)
            .ok_or(AmountError::TooLarge { max: Self::MAX })
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amounts_are_written_with_two_places() {
        assert_eq!(
            Amount::parse("25").map(|a| a.to_string()),
            Ok("25.00".into())
        );
        assert_eq!(
            Amount::parse("25.5").map(|a| a.to_string()),
            Ok("25.50".into())
        );
        assert_eq!(
            Amount::parse("0.07").map(|a| a.to_string()),
            Ok("0.07".into())
        );
        assert_eq!(Amount::parse("1000.10").map(|a| a.cents()), Ok(100_010));
    }

    #[test]
    fn bad_amounts_are_rejected_with_a_reason() {
        assert_eq!(Amount::parse("abc"), Err(AmountError::NotADecimal));
        assert_eq!(Amount::parse(""), Err(AmountError::NotADecimal));
        assert_eq!(Amount::parse("1.001"), Err(AmountError::TooPrecise));
        assert_eq!(Amount::parse("-1"), Err(AmountError::Negative));
        assert!(Amount::parse("1e30").is_err());
        assert!(matches!(
            Amount::parse("1000000000001"),
            Err(AmountError::TooLarge { .. })
        ));
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount::ZERO.checked_sub(Amount(1)), None);
        assert_eq!(Amount::MAX.checked_add(Amount(1)), None);
        assert_eq!(Amount(150).checked_add(Amount(50)), Some(Amount(200)));
    }

    proptest! {
        #[test]
        fn every_amount_survives_a_round_trip_through_text(cents in 0..=Amount::MAX.0) {
            let amount = Amount(cents);
            prop_assert_eq!(Amount::parse(&amount.to_string()), Ok(amount));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = Amount::parse(&text);
        }
    }
}
