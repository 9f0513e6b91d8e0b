//! The JSON bodies of market responses, rendered once so that cached reads send them as they are.

use std::collections::HashMap;

use application::caching::MarketRenderer;
use application::markets::MarketList;
use domain::Market;

use crate::dto::markets::MarketResponse;
use crate::dto::users::UserResponse;
use crate::envelope::{Envelope, ListEnvelope};

/// Renders markets as this API's envelopes (`{"success": true, "data": ...}`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonMarketRenderer;

impl MarketRenderer for JsonMarketRenderer {
    fn market(&self, market: &Market) -> Vec<u8> {
        to_json(&Envelope::of(MarketResponse::from(market)))
    }

    fn list(&self, list: &MarketList, include_creators: bool) -> Vec<u8> {
        let creators: HashMap<_, _> = list.creators.iter().map(|user| (user.id, user)).collect();
        let page = list.page.clone().map(|market| {
            let creator = market
                .creator_id
                .filter(|_| include_creators)
                .and_then(|id| creators.get(&id))
                .map(|user| UserResponse::of(user, None));
            MarketResponse {
                creator,
                ..MarketResponse::from(market)
            }
        });
        to_json(&ListEnvelope::of(page))
    }
}

/// Serializes a response DTO. They hold only strings, numbers and plain structs, which always
/// serialize; an empty body would be caught by every API test.
fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::market::MarketDraft;
    use domain::{Category, MarketDescription, MarketId, MarketName, UserId};

    #[test]
    fn a_market_renders_as_its_envelope() {
        let now = chrono::Utc::now();
        let market = Market::open(
            MarketId::from_uuid(uuid::Uuid::now_v7()),
            MarketDraft {
                name: MarketName::parse("Will it rain?").expect("a name"),
                description: MarketDescription::parse("Tomorrow, in Paris").expect("a text"),
                category: Category::parse("weather").expect("a category"),
                end_date: now + chrono::Duration::days(1),
            },
            UserId::from_uuid(uuid::Uuid::now_v7()),
            now,
        )
        .expect("an open market");
        let body: serde_json::Value =
            serde_json::from_slice(&JsonMarketRenderer.market(&market)).expect("JSON");
        assert_eq!(body["success"], true);
        assert_eq!(body["data"]["id"], market.id.to_string());
        assert_eq!(body["data"]["name"], "Will it rain?");
        assert_eq!(body["data"]["version"], market.version);
    }
}
