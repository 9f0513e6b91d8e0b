//! `/api/v1/auth`: registration and sign-in.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use application::idempotency::{Idempotent, Replayable};
use domain::User;

use crate::AppState;
use crate::dto::users::{LoginRequest, RegisterRequest, TokenResponse, UserResponse};
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdempotencyKey, ValidJson};
use crate::idempotency;

/// The 201 of a registration, rendered once (for the client and for idempotent replays).
fn registered(user: &User) -> domain::ports::StoredResponse {
    let own = domain::Actor {
        user_id: user.id,
        role: user.role,
    };
    idempotency::render_json(
        StatusCode::CREATED,
        vec![(
            header::LOCATION.to_string(),
            format!("/api/v1/users/{}", user.id),
        )],
        &Envelope::of(UserResponse::of(user, Some(&own))),
    )
}

/// Create an account (role `user`).
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body replay the first response")),
    responses(
        (status = 201, description = "Registered; `Location` names the new user", body = Envelope<UserResponse>,
            headers(("Location" = String, description = "URL of the new user"))),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 409, description = "`conflict`: the email is registered; `idempotency_in_progress`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`: the key was used for another request", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    key: IdempotencyKey,
    json: ValidJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = idempotency::request(key, None, "POST /api/v1/auth/register", &json.digest);
    let idempotent = request.as_ref().map(|request| Idempotent {
        request,
        render: &registered,
    });
    let outcome = state
        .use_cases
        .register(json.body.into_registration()?, idempotent.as_ref())
        .await?;
    Ok(match outcome {
        Replayable::Done(user) => idempotency::respond(registered(&user), false),
        Replayable::Replay(stored) => idempotency::respond(stored, true),
    })
}

/// Sign in with email and password; returns a bearer access token. Signing in changes nothing,
/// so it is safe to retry; an `Idempotency-Key` is accepted and not stored (tokens are never kept
/// at rest for replay).
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = Envelope<TokenResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: unknown email or wrong password (indistinguishable)", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    json: ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = json.body;
    let signed_in = state.use_cases.login(&body.email, &body.password).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Envelope::of(TokenResponse {
            access_token: signed_in.access_token.token,
            token_type: "Bearer",
            expires_in: signed_in.access_token.expires_in_seconds,
        })))
}
