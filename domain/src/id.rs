//! Typed identifiers: one newtype per entity over a UUID (v7 when generated), from one macro.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The text given was not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid UUID")]
pub struct InvalidId;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

typed_id!(
    /// Identifies a [`crate::User`].
    UserId
);
typed_id!(
    /// Identifies a [`crate::Market`].
    MarketId
);
typed_id!(
    /// Identifies a [`crate::Position`].
    PositionId
);
typed_id!(
    /// Identifies a recorded [`crate::DomainEvent`].
    EventId
);
typed_id!(
    /// Identifies a [`crate::job::Job`] of the job queue.
    JobId
);
typed_id!(
    /// Identifies a [`crate::Session`]: one sign-in, and the family of its refresh tokens.
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = UserId::from_uuid(Uuid::now_v7());
        assert_eq!(id.to_string().parse::<UserId>(), Ok(id));
    }

    #[test]
    fn text_that_is_not_a_uuid_is_rejected() {
        assert_eq!("42".parse::<MarketId>(), Err(InvalidId));
        assert_eq!("".parse::<MarketId>(), Err(InvalidId));
    }
}
