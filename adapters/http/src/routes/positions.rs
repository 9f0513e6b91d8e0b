//! Positions: open one on a market, list a market's or a user's.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use application::idempotency::{Idempotent, Replayable};
use application::positions::PositionList;
use domain::ports::StoredResponse;
use domain::{MarketId, Position, UserId};
use uuid::Uuid;

use crate::AppState;
use crate::dto::positions::{OpenPositionRequest, PositionListParams, PositionResponse};
use crate::envelope::{Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AuthUser, IdempotencyKey, MaybeAuthUser, ValidJson};
use crate::idempotency;

/// The 201 of a new position, rendered once (for the client and for idempotent replays).
fn opened(position: &Position) -> StoredResponse {
    idempotency::render_json(
        StatusCode::CREATED,
        vec![(
            header::LOCATION.to_string(),
            format!("/api/v1/markets/{}/positions", position.market_id),
        )],
        &Envelope::of(PositionResponse::of(position, None)),
    )
}

fn list_response(list: PositionList) -> HttpResponse {
    let markets: HashMap<_, _> = list.markets.iter().map(|m| (m.id, m)).collect();
    let page = list
        .page
        .map(|position| PositionResponse::of(&position, markets.get(&position.market_id).copied()));
    HttpResponse::Ok().json(ListEnvelope::of(page))
}

/// Open a position: stake credits on `yes` or `no`. The balance is debited, the market's volume
/// grows and the position is stored, all in one transaction.
#[utoipa::path(
    post, path = "/api/v1/markets/{id}/positions", tag = "positions",
    params(("id" = Uuid, Path, description = "Market id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body replay the first response")),
    request_body = OpenPositionRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Opened", body = Envelope<PositionResponse>, headers(("Location" = String, description = "The market's positions"))),
        (status = 400, description = "`malformed_request` or `validation_failed` (side, amount bounds)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such market", body = ErrorBody),
        (status = 409, description = "`market_not_open` (not active, or ended), `insufficient_balance`, or `idempotency_in_progress`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn open_position(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    json: ValidJson<OpenPositionRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = idempotency::request(
        key,
        Some(&actor),
        "POST /api/v1/markets/{id}/positions",
        &format!("{}\n{}", id.as_ref(), json.digest),
    );
    let idempotent = request.as_ref().map(|request| Idempotent {
        request,
        render: &opened,
    });
    let outcome = state
        .use_cases
        .open_position(
            &actor,
            MarketId::from_uuid(id.into_inner()),
            json.body.into_order()?,
            idempotent.as_ref(),
        )
        .await?;
    Ok(match outcome {
        Replayable::Done(position) => idempotency::respond(opened(&position), false),
        Replayable::Replay(stored) => idempotency::respond(stored, true),
    })
}

/// The positions on a market, for anyone.
#[utoipa::path(
    get, path = "/api/v1/markets/{id}/positions", tag = "positions",
    params(("id" = Uuid, Path, description = "Market id"), PositionListParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of positions", body = ListEnvelope<PositionResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`invalid_token`, `token_expired`, `session_revoked`, ... when bad credentials are sent", body = ErrorBody),
        (status = 404, description = "`not_found`: no such market", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn list_market_positions(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    params: web::Query<PositionListParams>,
    MaybeAuthUser(viewer): MaybeAuthUser,
) -> Result<HttpResponse, ApiError> {
    let (query, include_market) = params.into_inner().into_query()?;
    let list = state
        .use_cases
        .list_market_positions(
            MarketId::from_uuid(id.into_inner()),
            query,
            include_market,
            viewer.as_ref(),
        )
        .await?;
    Ok(list_response(list))
}

/// A user's positions: for that user and admins only.
#[utoipa::path(
    get, path = "/api/v1/users/{id}/positions", tag = "positions",
    params(("id" = Uuid, Path, description = "User id"), PositionListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of positions", body = ListEnvelope<PositionResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: another user's positions", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user (asked by an admin)", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn list_user_positions(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
    params: web::Query<PositionListParams>,
) -> Result<HttpResponse, ApiError> {
    let (query, include_market) = params.into_inner().into_query()?;
    let list = state
        .use_cases
        .list_user_positions(
            &actor,
            UserId::from_uuid(id.into_inner()),
            query,
            include_market,
        )
        .await?;
    Ok(list_response(list))
}
