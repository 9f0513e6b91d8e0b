//! Position bodies and the position list query.

use chrono::{DateTime, Utc};
use domain::listing::{PositionFilter, PositionListQuery, PositionSort};
use domain::{Market, Position, Side, Stake};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::markets::{MarketResponse, Problems, whole_number, window};
use super::parses;
use crate::error::ApiError;

/// `POST /api/v1/markets/{id}/positions` (and `initial_position` of a new market).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenPositionRequest {
    /// `yes` or `no`.
    #[garde(custom(parses(Side::parse)))]
    #[schema(example = "yes", pattern = "^(yes|no)$")]
    pub side: String,
    /// Credits to stake: a decimal string with at most two places, from `1.00` to `100000.00`.
    #[garde(custom(parses(Stake::parse)))]
    #[schema(
        example = "25.00",
        pattern = "^(100000(\\.0{1,2})?|[1-9][0-9]{0,4}(\\.[0-9]{1,2})?)$"
    )]
    pub amount: String,
}

impl OpenPositionRequest {
    pub fn into_order(self) -> Result<application::positions::PositionOrder, ApiError> {
        Ok(application::positions::PositionOrder {
            side: Side::parse(&self.side).map_err(|e| ApiError::invalid_field("side", e))?,
            stake: Stake::parse(&self.amount).map_err(|e| ApiError::invalid_field("amount", e))?,
        })
    }
}

/// A position.
#[derive(Debug, Serialize, ToSchema)]
pub struct PositionResponse {
    pub id: Uuid,
    pub market_id: Uuid,
    pub user_id: Uuid,
    #[schema(example = "yes")]
    pub side: &'static str,
    #[schema(example = "25.00")]
    pub amount: String,
    /// What the position paid out when its market was settled (resolved: the winners share the
    /// pool; cancelled: stakes refunded); `null` until then.
    #[schema(example = "41.50")]
    pub payout: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The market, with `include=market`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketResponse>,
}

impl PositionResponse {
    #[must_use]
    pub fn of(position: &Position, market: Option<&Market>) -> Self {
        Self {
            id: position.id.as_uuid(),
            market_id: position.market_id.as_uuid(),
            user_id: position.user_id.as_uuid(),
            side: position.side.as_str(),
            amount: position.amount.to_string(),
            payout: position.payout.map(|payout| payout.to_string()),
            created_at: position.created_at,
            market: market.map(MarketResponse::from),
        }
    }
}

/// Query parameters of the position lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PositionListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Rows to skip (default 0, at most 1,000,000). Not together with `page`.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 1_000_000)]
    pub offset: Option<String>,
    /// 1-based page number, at most 10,001. Not together with `offset`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10_001)]
    pub page: Option<String>,
    /// Comma-separated sort keys, `-` for descending: `created_at`, `amount` (each once;
    /// default `-created_at`). Ties are broken by id.
    #[param(pattern = "^-?(created_at|amount)(,-?(created_at|amount))?$")]
    pub sort: Option<String>,
    /// `yes` or `no`.
    #[param(pattern = "^(yes|no)$")]
    pub side: Option<String>,
    /// `market`: each position's market, loaded with one more query whatever the page size.
    #[param(pattern = "^market$")]
    pub include: Option<String>,
}

impl PositionListParams {
    /// Parses every parameter, reporting every invalid one at once; also whether the markets are
    /// to be included.
    pub fn into_query(self) -> Result<(PositionListQuery, bool), ApiError> {
        let mut problems = Problems::default();
        let limit = problems.take("limit", self.limit.as_deref(), whole_number);
        let offset = problems.take("offset", self.offset.as_deref(), whole_number);
        let page_number = problems.take("page", self.page.as_deref(), whole_number);
        let include_market = problems
            .take("include", self.include.as_deref(), |t| {
                (t == "market")
                    .then_some(true)
                    .ok_or("the only inclusion is 'market'")
            })
            .unwrap_or(false);
        let query = PositionListQuery {
            filter: PositionFilter {
                side: problems.take("side", self.side.as_deref(), Side::parse),
                ..PositionFilter::default()
            },
            sort: problems
                .take("sort", self.sort.as_deref(), PositionSort::parse)
                .unwrap_or_default(),
            page: window(limit, offset, page_number, &mut problems),
        };
        problems.into_result((query, include_market))
    }
}
