//! `Position` to and from a `positions` row.

use domain::{Amount, MarketId, Position, PositionId, Side, UserId};
use sea_orm::ActiveValue::Set;

use super::stored;
use crate::entity::positions;
use crate::error::CorruptRow;

const TABLE: &str = "positions";

/// The row that stores `position`.
pub(crate) fn to_active_model(position: &Position) -> positions::ActiveModel {
    positions::ActiveModel {
        id: Set(position.id.as_uuid()),
        market_id: Set(position.market_id.as_uuid()),
        user_id: Set(position.user_id.as_uuid()),
        side: Set(position.side.as_str().to_owned()),
        amount_cents: Set(position.amount.cents()),
        payout_cents: Set(position.payout.map(Amount::cents)),
        created_at: Set(stored(position.created_at)),
    }
}

/// The position a row stores.
///
/// # Errors
/// [`CorruptRow`] when a column does not hold a valid value.
pub(crate) fn to_domain(row: positions::Model) -> Result<Position, CorruptRow> {
    let id = row.id;
    Ok(Position {
        id: PositionId::from_uuid(id),
        market_id: MarketId::from_uuid(row.market_id),
        user_id: UserId::from_uuid(row.user_id),
        side: Side::parse(&row.side).map_err(CorruptRow::at(TABLE, id, "side"))?,
        amount: Amount::from_cents(row.amount_cents)
            .ok_or("out of range")
            .map_err(CorruptRow::at(TABLE, id, "amount_cents"))?,
        payout: row
            .payout_cents
            .map(|cents| Amount::from_cents(cents).ok_or("out of range"))
            .transpose()
            .map_err(CorruptRow::at(TABLE, id, "payout_cents"))?,
        created_at: row.created_at,
    })
}
