//! Real-time market events: the hub every instance publishes into, the WebSocket route and the live page.
//!
//! Events reach [`MarketStream::publish`] from the event bus (wired by the composition root); each
//! connected client has a bounded buffer and a filter of markets. See [`route::market_stream`] for
//! the wire format and the close codes.

pub mod hub;
pub mod live;
pub mod message;
pub mod origin;
pub mod route;

pub use hub::{
    ConnectError, Delivery, Disconnect, Filter, MAX_FILTER_IDS, MarketStream, StreamSettings,
    Subscriber,
};
