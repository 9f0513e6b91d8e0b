//! Use cases about positions: open one, list them by market or by user.

mod list_positions;
mod open_position;

pub use list_positions::{ListPositionsError, PositionList};
pub use open_position::{OpenPositionError, PositionOrder};
