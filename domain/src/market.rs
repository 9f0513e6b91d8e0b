//! Markets: the `Market` entity, its lifecycle and the value objects that guard its fields.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{MarketId, UserId};
use crate::money::Amount;

/// Where a market is in its life. `Resolved` and `Cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketStatus {
    Active,
    Closed,
    Resolved,
    Cancelled,
}

impl MarketStatus {
    pub const ALL: [Self; 4] = [Self::Active, Self::Closed, Self::Resolved, Self::Cancelled];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Closed => "closed",
            Self::Resolved => "resolved",
            Self::Cancelled => "cancelled",
        }
    }

    /// # Errors
    /// [`UnknownStatus`] for any text that is not a status name.
    pub fn parse(text: &str) -> Result<Self, UnknownStatus> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or(UnknownStatus)
    }

    /// Resolved or cancelled: nothing changes any more, and the market's positions are settled.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Resolved | Self::Cancelled)
    }

    /// Whether a market may move from `self` to `next`.
    #[must_use]
    pub const fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (
                Self::Active,
                Self::Closed | Self::Resolved | Self::Cancelled
            ) | (Self::Closed, Self::Resolved | Self::Cancelled)
        )
    }
}

impl fmt::Display for MarketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a market status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown market status")]
pub struct UnknownStatus;

/// The side that won a resolved market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Yes,
    No,
}

impl Outcome {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
        }
    }

    /// # Errors
    /// [`UnknownOutcome`] for anything but `yes` or `no`.
    pub fn parse(text: &str) -> Result<Self, UnknownOutcome> {
        match text {
            "yes" => Ok(Self::Yes),
            "no" => Ok(Self::No),
            _ => Err(UnknownOutcome),
        }
    }
}

/// The text was not `yes` or `no`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome")]
pub struct UnknownOutcome;

/// Why a text is not acceptable for a bounded text field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must be at least {min} characters")]
    TooShort { min: usize },
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    ControlCharacters,
    #[error("must contain only lower-case letters, digits and '-'")]
    NotASlug,
}

fn bounded(text: &str, min: usize, max: usize, allow_newlines: bool) -> Result<String, TextError> {
    let text = text.trim();
    let length = text.chars().count();
    if length < min {
        Err(TextError::TooShort { min })
    } else if length > max {
        Err(TextError::TooLong { max })
    } else if text
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
    {
        Err(TextError::ControlCharacters)
    } else {
        Ok(text.to_owned())
    }
}

/// A market's question: 3..=200 characters, trimmed, one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MarketName(String);

impl MarketName {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 200;

    /// # Errors
    /// [`TextError`] naming the bound that was missed.
    pub fn parse(text: &str) -> Result<Self, TextError> {
        bounded(text, Self::MIN_LEN, Self::MAX_LEN, false).map(Self)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A market's description: up to 5,000 characters; newlines and tabs allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct MarketDescription(String);

impl MarketDescription {
    pub const MAX_LEN: usize = 5_000;

    /// # Errors
    /// [`TextError`] naming the bound that was missed.
    pub fn parse(text: &str) -> Result<Self, TextError> {
        bounded(text, 0, Self::MAX_LEN, true).map(Self)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A market's category: a slug of 1..=50 lower-case ASCII letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Category(String);

impl Category {
    pub const MAX_LEN: usize = 50;

    /// # Errors
    /// [`TextError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, TextError> {
        let text = bounded(text, 1, Self::MAX_LEN, false)?;
        if text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Ok(Self(text))
        } else {
            Err(TextError::NotASlug)
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A rule of the market lifecycle that a change would break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketError {
    #[error("the end date must be in the future")]
    EndDateNotInFuture,
    #[error("a market that is {from} cannot become {to}")]
    InvalidTransition {
        from: MarketStatus,
        to: MarketStatus,
    },
    #[error("resolving a market needs an outcome")]
    OutcomeRequired,
    #[error("only a resolution carries an outcome")]
    OutcomeNotAllowed,
    #[error("an active market cannot be set back to active")]
    AlreadyActive,
}

/// What a new market is made of, already validated field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketDraft {
    pub name: MarketName,
    pub description: MarketDescription,
    pub category: Category,
    pub end_date: DateTime<Utc>,
}

/// A requested move through the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub status: MarketStatus,
    pub outcome: Option<Outcome>,
}

/// A partial update: each `Some` field replaces the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketChanges {
    pub name: Option<MarketName>,
    pub description: Option<MarketDescription>,
    pub category: Option<Category>,
    pub end_date: Option<DateTime<Utc>>,
    pub status: Option<StatusChange>,
}

impl MarketChanges {
    /// Whether the change touches what the market says (as opposed to only its status).
    #[must_use]
    pub const fn edits_content(&self) -> bool {
        self.name.is_some()
            || self.description.is_some()
            || self.category.is_some()
            || self.end_date.is_some()
    }

    /// A full replacement of the content fields (the meaning of `PUT`).
    #[must_use]
    pub fn replacing_with(draft: MarketDraft) -> Self {
        Self {
            name: Some(draft.name),
            description: Some(draft.description),
            category: Some(draft.category),
            end_date: Some(draft.end_date),
            status: None,
        }
    }
}

/// A yes/no question people take positions on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    pub id: MarketId,
    pub name: MarketName,
    pub description: MarketDescription,
    pub category: Category,
    pub status: MarketStatus,
    pub end_date: DateTime<Utc>,
    pub creator_id: UserId,
    pub yes_volume: Amount,
    pub no_volume: Amount,
    pub outcome: Option<Outcome>,
    pub image_url: Option<String>,
    pub thumbnail_url: Option<String>,
    /// Incremented by every change; the basis of `ETag` and `If-Match`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Market {
    /// Opens a new, active market with no volume. The end date is kept to the microsecond, the
    /// precision of every timestamp in the domain.
    ///
    /// # Errors
    /// [`MarketError::EndDateNotInFuture`] when `draft.end_date` is not after `now`.
    pub fn open(
        id: MarketId,
        draft: MarketDraft,
        creator_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Self, MarketError> {
        if draft.end_date <= now {
            return Err(MarketError::EndDateNotInFuture);
        }
        Ok(Self {
            id,
            name: draft.name,
            description: draft.description,
            category: draft.category,
            status: MarketStatus::Active,
            end_date: draft.end_date.trunc_subsecs(6),
            creator_id,
            yes_volume: Amount::ZERO,
            no_volume: Amount::ZERO,
            outcome: None,
            image_url: None,
            thumbnail_url: None,
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// Total staked on both sides. Saturates at [`Amount::MAX`], which no market reaches.
    #[must_use]
    pub fn volume(&self) -> Amount {
        self.yes_volume
            .checked_add(self.no_volume)
            .unwrap_or(Amount::MAX)
    }

    /// Whether anyone has staked on this market (owners may then no longer edit or delete it).
    #[must_use]
    pub fn has_positions(&self) -> bool {
        self.volume() > Amount::ZERO
    }

    /// Applies `changes`, bumping `version` and `updated_at`. On error nothing is changed.
    ///
    /// # Errors
    /// [`MarketError`] when the end date is not in the future or the status change is not a
    /// transition of the lifecycle (or misses or misplaces an outcome).
    pub fn apply(&mut self, changes: MarketChanges, now: DateTime<Utc>) -> Result<(), MarketError> {
        if changes.end_date.is_some_and(|end_date| end_date <= now) {
            return Err(MarketError::EndDateNotInFuture);
        }
        if let Some(change) = changes.status {
            self.check_transition(change)?;
        }
        if let Some(name) = changes.name {
            self.name = name;
        }
        if let Some(description) = changes.description {
            self.description = description;
        }
        if let Some(category) = changes.category {
            self.category = category;
        }
        if let Some(end_date) = changes.end_date {
            self.end_date = end_date.trunc_subsecs(6);
        }
        if let Some(change) = changes.status {
            self.status = change.status;
            self.outcome = change.outcome;
        }
        self.version += 1;
        self.updated_at = now;
        Ok(())
    }

    fn check_transition(&self, change: StatusChange) -> Result<(), MarketError> {
        let to = change.status;
        if to == MarketStatus::Active && self.status == MarketStatus::Active {
            return Err(MarketError::AlreadyActive);
        }
        if !self.status.can_become(to) {
            return Err(MarketError::InvalidTransition {
                from: self.status,
                to,
            });
        }
        match (to, change.outcome) {
            (MarketStatus::Resolved, None) => Err(MarketError::OutcomeRequired),
            (MarketStatus::Resolved, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err(MarketError::OutcomeNotAllowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn draft(end_date: DateTime<Utc>) -> MarketDraft {
        MarketDraft {
            name: MarketName::parse("Will it rain tomorrow?").unwrap_or_else(|e| panic!("{e}")),
            description: MarketDescription::default(),
            category: Category::parse("weather").unwrap_or_else(|e| panic!("{e}")),
            end_date,
        }
    }

    fn market() -> Market {
        Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            draft(now() + Duration::days(30)),
            UserId::from_uuid(Uuid::now_v7()),
            now(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_new_market_is_active_with_no_volume_at_version_one() {
        let market = market();
        assert_eq!(market.status, MarketStatus::Active);
        assert_eq!(market.volume(), Amount::ZERO);
        assert!(!market.has_positions());
        assert_eq!(market.version, 1);
    }

    #[test]
    fn a_market_cannot_open_with_an_end_date_in_the_past() {
        let result = Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            draft(now()),
            UserId::from_uuid(Uuid::now_v7()),
            now(),
        );
        assert_eq!(result, Err(MarketError::EndDateNotInFuture));
    }

    #[test]
    fn every_status_transition_follows_the_lifecycle() {
        use MarketStatus::*;
        let allowed = [
            (Active, Closed),
            (Active, Resolved),
            (Active, Cancelled),
            (Closed, Resolved),
            (Closed, Cancelled),
        ];
        for from in MarketStatus::ALL {
            for to in MarketStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn resolving_needs_an_outcome_and_records_it() {
        let mut market = market();
        let resolve = |outcome| MarketChanges {
            status: Some(StatusChange {
                status: MarketStatus::Resolved,
                outcome,
            }),
            ..MarketChanges::default()
        };
        assert_eq!(
            market.apply(resolve(None), now()),
            Err(MarketError::OutcomeRequired)
        );
        assert_eq!(market.version, 1, "a rejected change changes nothing");
        assert_eq!(market.apply(resolve(Some(Outcome::Yes)), now()), Ok(()));
        assert_eq!(market.status, MarketStatus::Resolved);
        assert_eq!(market.outcome, Some(Outcome::Yes));
        assert_eq!(market.version, 2);
        assert!(matches!(
            market.apply(resolve(Some(Outcome::No)), now()),
            Err(MarketError::InvalidTransition { .. })
        ));
    }

    #[test]
    fn only_a_resolution_carries_an_outcome() {
        let mut market = market();
        let cancel = MarketChanges {
            status: Some(StatusChange {
                status: MarketStatus::Cancelled,
                outcome: Some(Outcome::No),
            }),
            ..MarketChanges::default()
        };
        assert_eq!(
            market.apply(cancel, now()),
            Err(MarketError::OutcomeNotAllowed)
        );
    }

    #[test]
    fn an_edit_cannot_move_the_end_date_into_the_past() {
        let mut market = market();
        let changes = MarketChanges {
            name: MarketName::parse("New name").ok(),
            end_date: Some(now() - Duration::seconds(1)),
            ..MarketChanges::default()
        };
        assert_eq!(
            market.apply(changes, now()),
            Err(MarketError::EndDateNotInFuture)
        );
        assert_eq!(market.name.as_str(), "Will it rain tomorrow?");
    }

    #[test]
    fn end_dates_are_kept_to_the_microsecond() {
        let precise = now() + Duration::days(1) + Duration::nanoseconds(123_456_789);
        let market = Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            draft(precise),
            UserId::from_uuid(Uuid::now_v7()),
            now(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(market.end_date.timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn text_fields_are_bounded() {
        assert_eq!(MarketName::parse("ab"), Err(TextError::TooShort { min: 3 }));
        assert_eq!(
            MarketName::parse(&"x".repeat(201)),
            Err(TextError::TooLong { max: 200 })
        );
        assert_eq!(
            MarketName::parse("a\nbc"),
            Err(TextError::ControlCharacters)
        );
        assert!(MarketDescription::parse("line one\nline two").is_ok());
        assert_eq!(
            MarketDescription::parse("nul \0 byte"),
            Err(TextError::ControlCharacters)
        );
        assert_eq!(Category::parse("Sports"), Err(TextError::NotASlug));
        assert!(Category::parse("us-politics-2028").is_ok());
    }
}
