//! Use cases about markets: create, read, list, search, replace, update and delete; closing ended markets and settling finished ones.

mod change_market;
mod close_ended_markets;
mod create_market;
mod delete_market;
mod get_market;
mod list_markets;
mod market_image;
mod search_markets;
mod settle_market;
mod thumbnail;

pub use change_market::{ChangeMarketError, Precondition};
pub use close_ended_markets::{
    CLOSE_ENDED_MARKETS, CloseEndedMarketsHandler, close_ended_markets_job,
};
pub use create_market::{CreateMarketError, CreatedMarket, InitialPosition};
pub use delete_market::DeleteMarketError;
pub use get_market::GetMarketError;
pub use list_markets::{ListMarketsError, MarketList};
pub use market_image::{
    GetImageError, MAKE_THUMBNAIL, MarketImage, ServedImage, ThumbnailPayload, UploadImageError,
};
pub use search_markets::{Found, MAX_SEARCH_LIMIT, SearchEngine, SearchMarketsError, SearchMode};
pub use settle_market::{
    SETTLE_MARKET, SettleMarketError, SettleMarketHandler, Settled, settle_market_job,
};
pub use thumbnail::{
    MAX_DECODE_ALLOC, MAX_DECODED_SIDE, THUMBNAIL_SIZE, ThumbnailHandler, make_thumbnail_png,
};
