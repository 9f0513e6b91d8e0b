//! `/api/v1/markets`: the markets resource.

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::{Market, MarketId};
use uuid::Uuid;

use crate::AppState;
use crate::dto::markets::{
    MarketContentRequest, MarketListParams, MarketPatchRequest, MarketResponse,
};
use crate::envelope::{Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AuthUser, IfMatch, ValidJson, entity_tag};

/// The response for one market, with its `ETag`.
fn market_response(mut response: actix_web::HttpResponseBuilder, market: &Market) -> HttpResponse {
    response
        .insert_header((header::ETAG, entity_tag(market.version)))
        .json(Envelope::of(MarketResponse::from(market)))
}

/// List markets: filter, sort, paginate, choose fields.
#[utoipa::path(
    get, path = "/api/v1/markets", tag = "markets",
    params(MarketListParams),
    responses(
        (status = 200, description = "A page of markets", body = ListEnvelope<MarketResponse>),
        (status = 400, description = "`validation_failed` (bad parameter values, unknown sort field, page size out of range) or `malformed_request` (unknown or repeated parameter)", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn list_markets(
    state: web::Data<AppState>,
    params: web::Query<MarketListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.into_inner().into_query()?;
    let page = state.use_cases.list_markets(&query).await?;
    let page = domain::Page {
        items: page.items.into_iter().map(MarketResponse::from).collect(),
        total: page.total,
        request: page.request,
    };
    Ok(HttpResponse::Ok().json(ListEnvelope::of(page)))
}

/// Create a market (needs the `write` permission).
#[utoipa::path(
    post, path = "/api/v1/markets", tag = "markets",
    request_body = MarketContentRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` names it", body = Envelope<MarketResponse>,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn create_market(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    ValidJson(body): ValidJson<MarketContentRequest>,
) -> Result<HttpResponse, ApiError> {
    let market = state
        .use_cases
        .create_market(&actor, body.into_draft()?)
        .await?;
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("/api/v1/markets/{}", market.id)));
    Ok(market_response(response, &market))
}

/// One market, with an `ETag`; `If-None-Match` answers 304 when unchanged.
#[utoipa::path(
    get, path = "/api/v1/markets/{id}", tag = "markets",
    params(("id" = Uuid, Path, description = "Market id")),
    responses(
        (status = 200, description = "The market", body = Envelope<MarketResponse>, headers(("ETag" = String))),
        (status = 304, description = "Not modified since the `If-None-Match` entity tag"),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn get_market(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let market = state
        .use_cases
        .get_market(MarketId::from_uuid(id.into_inner()))
        .await?;
    let current = EntityTag::new_strong(market.version.to_string());
    let unchanged = match header::Header::parse(&request) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(&current)),
        Err(_) => false,
    };
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, current))
            .finish());
    }
    Ok(market_response(HttpResponse::Ok(), &market))
}

/// Replace what a market says (name, description, category, end date).
#[utoipa::path(
    put, path = "/api/v1/markets/{id}", tag = "markets",
    params(("id" = Uuid, Path, description = "Market id"),
        ("If-Match" = Option<String>, Header, description = "Entity tag from `ETag`; the change applies only to that version")),
    request_body = MarketContentRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", body = Envelope<MarketResponse>, headers(("ETag" = String))),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`forbidden`: only the owner while it has no positions, or a moderator or admin", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: concurrent changes kept winning", body = ErrorBody),
        (status = 412, description = "`precondition_failed`: `If-Match` is not the current version", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn replace_market(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
    IfMatch(precondition): IfMatch,
    ValidJson(body): ValidJson<MarketContentRequest>,
) -> Result<HttpResponse, ApiError> {
    let market = state
        .use_cases
        .replace_market(
            &actor,
            MarketId::from_uuid(id.into_inner()),
            body.into_draft()?,
            precondition,
        )
        .await?;
    Ok(market_response(HttpResponse::Ok(), &market))
}

/// Change some fields of a market; `status` (close, resolve with an outcome, cancel) needs a
/// moderator or admin.
#[utoipa::path(
    patch, path = "/api/v1/markets/{id}", tag = "markets",
    params(("id" = Uuid, Path, description = "Market id"),
        ("If-Match" = Option<String>, Header, description = "Entity tag from `ETag`; the change applies only to that version")),
    request_body = MarketPatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = Envelope<MarketResponse>, headers(("ETag" = String))),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: not a lifecycle transition, or concurrent changes kept winning", body = ErrorBody),
        (status = 412, description = "`precondition_failed`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn update_market(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
    IfMatch(precondition): IfMatch,
    ValidJson(body): ValidJson<MarketPatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let market = state
        .use_cases
        .update_market(
            &actor,
            MarketId::from_uuid(id.into_inner()),
            body.into_changes()?,
            precondition,
        )
        .await?;
    Ok(market_response(HttpResponse::Ok(), &market))
}

/// Delete a market: the owner while it has no positions, or an admin.
#[utoipa::path(
    delete, path = "/api/v1/markets/{id}", tag = "markets",
    params(("id" = Uuid, Path, description = "Market id"),
        ("If-Match" = Option<String>, Header, description = "Entity tag from `ETag`; deletes only that version")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`", body = ErrorBody),
        (status = 412, description = "`precondition_failed`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn delete_market(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
    IfMatch(precondition): IfMatch,
) -> Result<HttpResponse, ApiError> {
    state
        .use_cases
        .delete_market(&actor, MarketId::from_uuid(id.into_inner()), precondition)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
