//! Use cases about markets: create, read, list, replace, update and delete.

mod change_market;
mod create_market;
mod delete_market;
mod get_market;
mod list_markets;

pub use change_market::{ChangeMarketError, Precondition};
pub use create_market::{CreateMarketError, CreatedMarket, InitialPosition};
pub use delete_market::DeleteMarketError;
pub use get_market::GetMarketError;
pub use list_markets::{ListMarketsError, MarketList};
