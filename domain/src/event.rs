//! Domain events: what happened, recorded by use cases in the same transaction as the change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{EventId, MarketId, PositionId, UserId};
use crate::market::{MarketStatus, Outcome};
use crate::money::Amount;
use crate::position::Side;

/// Something that happened to an aggregate. Serialised with a `type` tag (`"position_opened"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DomainEvent {
    UserRegistered {
        user_id: UserId,
    },
    MarketCreated {
        market_id: MarketId,
        creator_id: UserId,
    },
    MarketUpdated {
        market_id: MarketId,
        version: i64,
    },
    MarketStatusChanged {
        market_id: MarketId,
        status: MarketStatus,
        outcome: Option<Outcome>,
        version: i64,
    },
    MarketDeleted {
        market_id: MarketId,
    },
    PositionOpened {
        position_id: PositionId,
        market_id: MarketId,
        user_id: UserId,
        side: Side,
        amount: Amount,
        /// The market's volumes after the position.
        yes_volume: Amount,
        no_volume: Amount,
        version: i64,
    },
}

impl DomainEvent {
    /// The `type` tag.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::UserRegistered { .. } => "user_registered",
            Self::MarketCreated { .. } => "market_created",
            Self::MarketUpdated { .. } => "market_updated",
            Self::MarketStatusChanged { .. } => "market_status_changed",
            Self::MarketDeleted { .. } => "market_deleted",
            Self::PositionOpened { .. } => "position_opened",
        }
    }

    /// The market the event is about, if any.
    #[must_use]
    pub const fn market_id(&self) -> Option<MarketId> {
        match self {
            Self::UserRegistered { .. } => None,
            Self::MarketCreated { market_id, .. }
            | Self::MarketUpdated { market_id, .. }
            | Self::MarketStatusChanged { market_id, .. }
            | Self::MarketDeleted { market_id }
            | Self::PositionOpened { market_id, .. } => Some(*market_id),
        }
    }
}

/// An event with its identity and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub id: EventId,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: DomainEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn events_serialise_with_a_type_tag_and_round_trip() {
        let event = RecordedEvent {
            id: EventId::from_uuid(Uuid::now_v7()),
            occurred_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            event: DomainEvent::PositionOpened {
                position_id: PositionId::from_uuid(Uuid::now_v7()),
                market_id: MarketId::from_uuid(Uuid::now_v7()),
                user_id: UserId::from_uuid(Uuid::now_v7()),
                side: Side::Yes,
                amount: Amount::from_cents(2_500).unwrap_or_default(),
                yes_volume: Amount::from_cents(2_500).unwrap_or_default(),
                no_volume: Amount::ZERO,
                version: 2,
            },
        };
        let json = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(json["type"], "position_opened");
        assert_eq!(json["amount"], "25.00");
        assert_eq!(event.event.name(), "position_opened");
        let back: RecordedEvent = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, event);
    }
}
