//! `/api/v1/markets`: the markets resource.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective, EntityTag, IfNoneMatch};
use actix_web::{HttpRequest, HttpResponse, web};
use application::caching::Rendered;
use application::idempotency::{Idempotent, Replayable};
use application::markets::CreatedMarket;
use domain::ports::StoredResponse;
use domain::{Market, MarketId};
use uuid::Uuid;

use crate::AppState;
use crate::dto::markets::{
    CreateMarketRequest, MarketContentRequest, MarketListParams, MarketPatchRequest, MarketResponse,
};
use crate::envelope::{Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AuthUser, IdempotencyKey, IfMatch, MaybeAuthUser, ValidJson, entity_tag};
use crate::idempotency;

/// Market representations may be stored by clients and proxies but must be revalidated (with
/// `If-None-Match`) before each use: they change whenever a position is opened.
fn revalidate() -> CacheControl {
    CacheControl(vec![CacheDirective::NoCache])
}

/// A rendered JSON body, sent as it is.
fn rendered_json(mut response: actix_web::HttpResponseBuilder, body: Vec<u8>) -> HttpResponse {
    response
        .insert_header(header::ContentType::json())
        .insert_header(revalidate())
        .body(body)
}

/// The response for one market just changed, with its `ETag`.
fn changed_market(market: &Market) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, entity_tag(market.version)))
        .insert_header(revalidate())
        .json(Envelope::of(MarketResponse::from(market)))
}

/// The 201 of a new market, rendered once (for the client and for idempotent replays).
fn created(created: &CreatedMarket) -> StoredResponse {
    let market = &created.market;
    idempotency::render_json(
        StatusCode::CREATED,
        vec![
            (
                header::LOCATION.to_string(),
                format!("/api/v1/markets/{}", market.id),
            ),
            (header::ETAG.to_string(), entity_tag(market.version)),
        ],
        &Envelope::of(MarketResponse::from(market)),
    )
}

/// List markets: filter, sort, paginate, choose fields, include creators.
#[utoipa::path(
    get, path = "/api/v1/markets", tag = "markets",
    params(MarketListParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of markets", body = ListEnvelope<MarketResponse>),
        (status = 400, description = "`validation_failed` (bad parameter values, unknown sort field, page size out of range) or `malformed_request` (unknown or repeated parameter)", body = ErrorBody),
        (status = 401, description = "`invalid_token`, `token_expired`, `session_revoked`, ... when bad credentials are sent", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn list_markets(
    state: web::Data<AppState>,
    params: web::Query<MarketListParams>,
    MaybeAuthUser(viewer): MaybeAuthUser,
) -> Result<HttpResponse, ApiError> {
    let (query, include_creator) = params.into_inner().into_query()?;
    let page = state
        .use_cases
        .list_markets(&query, include_creator, viewer.as_ref())
        .await?;
    Ok(rendered_json(HttpResponse::Ok(), page.body))
}

/// Create a market (needs the `write` permission), optionally with the creator's first position:
/// both are created or neither.
#[utoipa::path(
    post, path = "/api/v1/markets", tag = "markets",
    request_body = CreateMarketRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body replay the first response")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` names it", body = Envelope<MarketResponse>,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`insufficient_balance` for the initial position; `idempotency_in_progress`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn create_market(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    key: IdempotencyKey,
    json: ValidJson<CreateMarketRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = idempotency::request(key, Some(&actor), "POST /api/v1/markets", &json.digest);
    let idempotent = request.as_ref().map(|request| Idempotent {
        request,
        render: &created,
    });
    let (draft, initial) = json.body.into_parts()?;
    let outcome = state
        .use_cases
        .create_market(&actor, draft, initial, idempotent.as_ref())
        .await?;
    Ok(match outcome {
        Replayable::Done(market) => idempotency::respond(created(&market), false),
        Replayable::Replay(stored) => idempotency::respond(stored, true),
    })
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
    let Rendered { version, body } = state
        .use_cases
        .get_market(MarketId::from_uuid(id.into_inner()))
        .await?;
    let current = EntityTag::new_strong(version.to_string());
    let unchanged = match header::Header::parse(&request) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(&current)),
        Err(_) => false,
    };
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, current))
            .insert_header(revalidate())
            .finish());
    }
    let mut response = HttpResponse::Ok();
    response.insert_header((header::ETAG, current));
    Ok(rendered_json(response, body))
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
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
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
    json: ValidJson<MarketContentRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = json.body;
    let market = state
        .use_cases
        .replace_market(
            &actor,
            MarketId::from_uuid(id.into_inner()),
            body.into_draft()?,
            precondition,
        )
        .await?;
    Ok(changed_market(&market))
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
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
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
    json: ValidJson<MarketPatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = json.body;
    let market = state
        .use_cases
        .update_market(
            &actor,
            MarketId::from_uuid(id.into_inner()),
            body.into_changes()?,
            precondition,
        )
        .await?;
    Ok(changed_market(&market))
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
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the market has positions (cancel it instead)", body = ErrorBody),
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
