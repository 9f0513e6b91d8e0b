//! `GET /api/v1/markets/search`: markets by relevance to a text, keyword and vector search fused.

use actix_web::{HttpResponse, web};
use domain::MarketStatus;
use domain::search::SearchQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::dto::markets::{MarketResponse, Problems, whole_number};
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorBody};

/// Query parameters of `GET /api/v1/markets/search`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for: 1 to 200 characters with at least one letter or digit.
    #[param(
        required = true,
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[\\p{L}\\p{N}][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub q: Option<String>,
    /// Results, 1 to 50 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub limit: Option<String>,
    /// Only markets in this status: `active`, `closed`, `resolved` or `cancelled`.
    #[param(pattern = "^(active|closed|resolved|cancelled)$")]
    pub status: Option<String>,
}

/// One market found, and how well it matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    /// Reciprocal-rank-fusion score of the keyword and vector rankings: higher is better;
    /// comparable within one search only.
    pub score: f32,
    pub market: MarketResponse,
}

/// Search markets by relevance: full-text search in the database (stemmed words, the name
/// weighing most) and vector search (the query's embedding against every market's, which
/// forgives misspellings and knows a few synonyms) fused by reciprocal rank; the markets are
/// then loaded by id in one query. Best first.
#[utoipa::path(
    get, path = "/api/v1/markets/search", tag = "markets",
    params(SearchParams),
    responses(
        (status = 200, description = "Markets, most relevant first", body = Envelope<Vec<SearchHit>>),
        (status = 400, description = "`validation_failed` (q missing, empty, too long or without a word; limit or status out of range) or `malformed_request` (unknown or repeated parameter)", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn search_markets(
    state: web::Data<AppState>,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let mut problems = Problems::default();
    // An absent `q` is refused like an empty one.
    let query = problems.take(
        "q",
        Some(params.q.as_deref().unwrap_or_default()),
        SearchQuery::parse,
    );
    let limit = problems
        .take("limit", params.limit.as_deref(), whole_number)
        .unwrap_or(20);
    if !(1..=application::markets::MAX_SEARCH_LIMIT).contains(&limit) {
        problems.push("limit", "must be between 1 and 50");
    }
    let status = problems.take("status", params.status.as_deref(), |text| {
        MarketStatus::parse(text).map_err(|_| "must be active, closed, resolved or cancelled")
    });
    // `take` gave `None` only with a problem recorded, so `into_result` refused already.
    let query = problems
        .into_result(query)?
        .ok_or_else(|| ApiError::invalid_field("q", "must be 1 to 200 characters"))?;
    let found = state
        .use_cases
        .search_markets(&query, status, limit)
        .await?;
    let hits: Vec<SearchHit> = found
        .iter()
        .map(|found| SearchHit {
            score: found.score,
            market: MarketResponse::from(&found.market),
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .json(Envelope::of(hits)))
}
